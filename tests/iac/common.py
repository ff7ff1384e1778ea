"""Shared helpers of the IaC checks: load infra/template.yaml, translate SAM to CloudFormation
offline, and report results.

The SAM translator needs `s3://` code locations, so translation runs on a copy whose CodeUri /
ContentUri point at placeholder objects (TEST_BUCKET); check_stack.py uploads those placeholders
to moto before creating the stack.
"""

from __future__ import annotations

import copy
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "infra" / "template.yaml"
TEST_BUCKET = "mlc-iac-check-artifacts"
CODE_KEY = "functions/bootstrap.zip"
LAYER_KEY = "layers/flows.zip"


class Report:
    """Collects pass/fail lines; `finish()` prints a summary and exits non-zero on any failure."""

    def __init__(self, name: str, quiet: bool | None = None) -> None:
        self.name = name
        self.failures: list[str] = []
        self.passes = 0
        # Passing lines only with MLC_IAC_VERBOSE=1; failures always.
        self.quiet = (os.environ.get("MLC_IAC_VERBOSE") != "1") if quiet is None else quiet
        self._section_passes = 0

    def ok(self, cond: bool, what: str, detail: str = "") -> bool:
        if cond:
            self.passes += 1
            self._section_passes += 1
            if not self.quiet:
                print(f"  ok    {what}")
        else:
            self.failures.append(what + (f": {detail}" if detail else ""))
            print(f"  FAIL  {what}" + (f"\n        {detail}" if detail else ""))
        return cond

    def note(self, text: str) -> None:
        if not self.quiet:
            print(f"        {text}")

    def eq(self, got, want, what: str) -> bool:
        return self.ok(got == want, what, f"expected {want!r}, got {got!r}")

    def section(self, title: str) -> None:
        self._close_section()
        self._title = title

    def _close_section(self) -> None:
        title = getattr(self, "_title", None)
        if title is not None:
            print(f"-- {title}: {self._section_passes} ok")
        self._title = None
        self._section_passes = 0

    def finish(self) -> None:
        self._close_section()
        if self.failures:
            print(f"{self.name}: {len(self.failures)} failure(s), {self.passes} passed")
            for f in self.failures:
                print(f"  - {f}")
            sys.exit(1)
        print(f"{self.name}: all {self.passes} checks passed")


def load_sam() -> dict:
    """The SAM template as plain JSON-able data (short-form tags expanded)."""
    from cfnlint.decode import decode

    tpl, matches = decode(str(TEMPLATE))
    if matches or tpl is None:
        raise SystemExit(f"cannot parse {TEMPLATE}: {matches}")
    return json.loads(json.dumps(tpl))


class _NoManagedPolicies:
    """The template attaches no managed policy; fail loudly if SAM ever wants to resolve one."""

    def load(self) -> dict:
        raise RuntimeError("template references an AWS managed policy; roles must be inline-only")


def translate(sam: dict | None = None) -> dict:
    """SAM -> CloudFormation with aws-sam-translator, offline."""
    from samtranslator.translator.transform import transform

    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    tpl = copy.deepcopy(sam if sam is not None else load_sam())
    tpl.setdefault("Globals", {}).setdefault("Function", {})["CodeUri"] = f"s3://{TEST_BUCKET}/{CODE_KEY}"
    for res in tpl["Resources"].values():
        props = res.get("Properties", {})
        if res["Type"] == "AWS::Serverless::Function" and "CodeUri" in props:
            props["CodeUri"] = f"s3://{TEST_BUCKET}/{CODE_KEY}"
        if res["Type"] == "AWS::Serverless::LayerVersion":
            props["ContentUri"] = f"s3://{TEST_BUCKET}/{LAYER_KEY}"
    return transform(tpl, {}, _NoManagedPolicies())


def resources_of(cfn: dict, rtype: str) -> dict[str, dict]:
    return {k: v for k, v in cfn["Resources"].items() if v["Type"] == rtype}


def refs_in(node) -> set[str]:
    """Logical ids referenced by Ref / Fn::GetAtt / ${X} / ${X.Attr} anywhere in `node`."""
    import re

    found: set[str] = set()
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "Ref" and isinstance(v, str):
                found.add(v)
            elif k == "Fn::GetAtt":
                found.add(v[0] if isinstance(v, list) else v.split(".")[0])
            elif k == "Fn::Sub":
                text = v[0] if isinstance(v, list) else v
                for name in re.findall(r"\$\{([A-Za-z0-9:]+)(?:\.[A-Za-z0-9.]+)?\}", text):
                    found.add(name)
                if isinstance(v, list):
                    found |= refs_in(v[1])
            else:
                found |= refs_in(v)
    elif isinstance(node, list):
        for v in node:
            found |= refs_in(v)
    return found
