"""Security scan: checkov over the translated CloudFormation template (SAM expanded, so SAM's own
generated resources - function URL, permissions, event source mappings - are scanned too).

Every finding must be explained: its check id listed under the template's
`Metadata: MlConnector::SecurityScan: checkov-skip` with a reason. Fails on an unexplained
finding, on a skip without a real reason, and on a listed skip that no longer fires (stale).

    python run_checkov.py PATH/TO/checkov
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

from common import Report, load_sam, translate


def main() -> None:
    checkov = sys.argv[1] if len(sys.argv) > 1 else "checkov"
    rep = Report("run_checkov")
    sam = load_sam()
    skips = sam.get("Metadata", {}).get("MlConnector::SecurityScan", {}).get("checkov-skip", [])
    reasons = {s["id"]: s.get("reason", "").strip() for s in skips}
    rep.section("skip list (template Metadata)")
    for cid, why in reasons.items():
        rep.ok(len(why) >= 40, f"{cid} has a reason", "a skip needs a real explanation")

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "template.json"
        path.write_text(json.dumps(translate(sam), indent=1))
        proc = subprocess.run(
            [checkov, "-f", str(path), "--framework", "cloudformation", "-o", "json", "--quiet",
             "--compact", "--skip-download"],
            capture_output=True, text=True,
        )
    if proc.returncode not in (0, 1):
        print(proc.stdout[-2000:], proc.stderr[-4000:])
        raise SystemExit(f"checkov failed to run (exit {proc.returncode})")
    data = json.loads(proc.stdout)
    runs = data if isinstance(data, list) else [data]
    failed = [f for r in runs for f in r.get("results", {}).get("failed_checks", [])]
    passed = sum(r.get("summary", {}).get("passed", 0) for r in runs)
    errors = sum(r.get("summary", {}).get("parsing_errors", 0) for r in runs)
    rep.section("checkov findings")
    rep.eq(errors, 0, "checkov parsed the template")
    by_id: dict[str, list[str]] = defaultdict(list)
    for f in failed:
        by_id[f["check_id"]].append(f["resource"])
    for cid, res in sorted(by_id.items()):
        name = next(f["check_name"] for f in failed if f["check_id"] == cid)
        if cid in reasons:
            print(f"  explained  {cid} ({len(res)}x) {name}")
        else:
            rep.ok(False, f"unexplained finding {cid}: {name}", ", ".join(sorted(set(res))))
    for cid in reasons:
        rep.ok(cid in by_id, f"skip {cid} still matches a finding", "remove the stale skip from the template")
    print(f"  checkov: {passed} passed, {len(failed)} failed checks, all explained" if not rep.failures else "")
    rep.finish()


if __name__ == "__main__":
    sys.exit(main())
