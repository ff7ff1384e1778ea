"""Least-privilege check of every IAM statement in the translated template (SAM -> CloudFormation).

Fails when:
- an Allow statement has a wildcard in an action (`sqs:*`, `dynamodb:Get*`) or uses NotAction /
  NotResource / NotPrincipal;
- a resource is `*` (or contains `*`) unless every action of the statement is in STAR_ALLOWED,
  each with the reason it cannot be narrowed;
- a role attaches managed policies (AWS managed ones grant logs:* on *);
- a role grants an (action, resource) pair outside its row of GRANTS, the contract of what each
  function may touch, or lacks one of the grants its function cannot work without (ESSENTIAL);
- a resource-based permission is public (`Principal: "*"`) other than the trigger's function URL.
"""

from __future__ import annotations

import sys

from common import Report, refs_in, resources_of, translate

# Actions that have no resource-level permissions in AWS (Service Authorization Reference: the
# "Resource types" column is empty), so `Resource: "*"` is the only possible value.
STAR_ALLOWED = {
    "xray:PutTraceSegments": ("no resource types exist for X-Ray writes (Tracing: Active)", None),
    "xray:PutTelemetryRecords": ("no resource types exist for X-Ray writes (Tracing: Active)", None),
    "cloudwatch:PutMetricData": (
        "no resource types; narrowed to the MlConnector namespace by condition",
        ("StringEquals", "cloudwatch:namespace", "MlConnector"),
    ),
}

# A wildcard inside a resource ARN that is still scoped to one named thing: the indexes of one
# table, the log streams of one log group.
SCOPED_WILDCARD_SUFFIXES = ("/index/*", "LogGroup}:*")

LOGS = ["logs:CreateLogStream", "logs:PutLogEvents"]
XRAY = ["xray:PutTraceSegments", "xray:PutTelemetryRecords"]
SQS_CONSUME = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes"]


def pairs(actions, resources):
    return {(a, r) for a in actions for r in resources}


# role -> every (action, resource logical id or "*") it may hold. Secrets appear under both the
# created secret and the "existing ARN" parameter (Fn::If picks one).
GRANTS: dict[str, set[tuple[str, str]]] = {
    "PollRole": pairs(LOGS, ["PollLogGroup"])
    | pairs(XRAY + ["cloudwatch:PutMetricData"], ["*"])
    | pairs(["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:Query"], ["ControlTable"])
    | pairs(["dynamodb:BatchGetItem", "dynamodb:BatchWriteItem", "dynamodb:Query"], ["RecordsTable"])
    | pairs(["dynamodb:BatchWriteItem"], ["AuditTable"])
    | pairs(["sqs:SendMessage"], ["SalesforceQueue", "MondayQueue"])
    | pairs(["secretsmanager:GetSecretValue"], ["SysproSecret", "SysproSecretArn"]),
    "SinkSalesforceRole": pairs(LOGS, ["SinkSalesforceLogGroup"])
    | pairs(XRAY, ["*"])
    | pairs(SQS_CONSUME + ["sqs:SendMessage"], ["SalesforceQueue"])
    | pairs(["sqs:SendMessage"], ["SalesforceDeadLetterQueue"])
    | pairs(["dynamodb:GetItem", "dynamodb:UpdateItem"], ["ControlTable"])
    | pairs(["dynamodb:BatchGetItem", "dynamodb:UpdateItem"], ["RecordsTable"])
    | pairs(["dynamodb:BatchWriteItem"], ["AuditTable"])
    | pairs(["secretsmanager:GetSecretValue"], ["SalesforceSecret", "SalesforceSecretArn"]),
    "SinkMondayRole": pairs(LOGS, ["SinkMondayLogGroup"])
    | pairs(XRAY, ["*"])
    | pairs(SQS_CONSUME + ["sqs:SendMessage"], ["MondayQueue"])
    | pairs(["sqs:SendMessage"], ["MondayDeadLetterQueue"])
    | pairs(["dynamodb:GetItem", "dynamodb:UpdateItem"], ["ControlTable"])
    | pairs(["dynamodb:BatchGetItem", "dynamodb:UpdateItem"], ["RecordsTable"])
    | pairs(["dynamodb:BatchWriteItem"], ["AuditTable"])
    | pairs(["secretsmanager:GetSecretValue"], ["MondaySecret", "MondaySecretArn"]),
    "ReplayRole": pairs(LOGS, ["ReplayLogGroup"])
    | pairs(XRAY, ["*"])
    | pairs(SQS_CONSUME + ["sqs:SendMessage"], ["SalesforceDeadLetterQueue", "MondayDeadLetterQueue"])
    | pairs(["sqs:SendMessage"], ["SalesforceQueue", "MondayQueue"])
    | pairs(["dynamodb:BatchWriteItem"], ["AuditTable"]),
    "TriggerRole": pairs(LOGS, ["TriggerLogGroup"])
    | pairs(XRAY, ["*"])
    | pairs(["lambda:InvokeFunction"], ["PollFunction"])
    | pairs(["secretsmanager:GetSecretValue"], ["TriggerSecret", "TriggerSecretArn"])
    | pairs(["dynamodb:GetItem", "dynamodb:UpdateItem"], ["ControlTable"]),
}

# What each function cannot run without (a missing one would fail in AWS, not here).
ESSENTIAL: dict[str, set[tuple[str, str]]] = {
    "PollRole": pairs(["sqs:SendMessage"], ["SalesforceQueue", "MondayQueue"])
    | pairs(["secretsmanager:GetSecretValue"], ["SysproSecret"])
    | pairs(LOGS, ["PollLogGroup"]),
    "SinkSalesforceRole": pairs(["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"], ["SalesforceQueue"])
    | pairs(["secretsmanager:GetSecretValue"], ["SalesforceSecret"])
    | pairs(LOGS, ["SinkSalesforceLogGroup"]),
    "SinkMondayRole": pairs(["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"], ["MondayQueue"])
    | pairs(["secretsmanager:GetSecretValue"], ["MondaySecret"])
    | pairs(LOGS, ["SinkMondayLogGroup"]),
    "ReplayRole": pairs(["sqs:ReceiveMessage", "sqs:DeleteMessage"], ["SalesforceDeadLetterQueue", "MondayDeadLetterQueue"])
    | pairs(["sqs:SendMessage"], ["SalesforceQueue", "MondayQueue"]),
    # The trigger claims request ids with a conditional UpdateItem (the shared budget store,
    # shared/aws/src/dynamo/budget.rs) and reads the run item with GetItem.
    "TriggerRole": pairs(["lambda:InvokeFunction"], ["PollFunction"])
    | pairs(["secretsmanager:GetSecretValue"], ["TriggerSecret"])
    | pairs(["dynamodb:GetItem", "dynamodb:UpdateItem"], ["ControlTable"]),
}


def as_list(v):
    return v if isinstance(v, list) else [v]


def check_statement(rep: Report, where: str, st: dict) -> set[tuple[str, str]]:
    """Checks one identity-policy statement; returns its (action, resource id) pairs."""
    sid = st.get("Sid", "?")
    label = f"{where} / {sid}"
    for bad in ("NotAction", "NotResource", "NotPrincipal"):
        rep.ok(bad not in st, f"{label}: no {bad}")
    if st.get("Effect") != "Allow":
        return set()
    actions = as_list(st.get("Action", []))
    for a in actions:
        rep.ok(isinstance(a, str) and "*" not in a and "?" not in a, f"{label}: action {a!r} has no wildcard")
    granted: set[tuple[str, str]] = set()
    for r in as_list(st.get("Resource", [])):
        if r == "*":
            for a in actions:
                allowed = STAR_ALLOWED.get(a)
                if not rep.ok(allowed is not None, f"{label}: `*` resource for {a}",
                              "this action supports resource-level permissions: name the resource"):
                    continue
                reason, cond = allowed
                if cond:
                    op, key, val = cond
                    got = st.get("Condition", {}).get(op, {}).get(key)
                    rep.ok(got == val, f"{label}: {a} on `*` is conditioned on {key} = {val}",
                           f"condition is {st.get('Condition')!r}")
                rep.note(f"(allowed: {a} on * - {reason})")
                granted.add((a, "*"))
        elif isinstance(r, str):
            rep.ok("*" not in r or r.endswith(SCOPED_WILDCARD_SUFFIXES),
                   f"{label}: literal resource {r!r} is specific")
            rep.ok(False, f"{label}: resource {r!r} refers to a template resource",
                   "hard-coded ARNs drift from the stack; use Ref/GetAtt")
        else:
            ids = refs_in(r) - {"AWS::Region", "AWS::AccountId", "AWS::Partition"}
            if isinstance(r, dict) and "Fn::Sub" in r:
                text = r["Fn::Sub"] if isinstance(r["Fn::Sub"], str) else r["Fn::Sub"][0]
                rep.ok("*" not in text or text.endswith(SCOPED_WILDCARD_SUFFIXES),
                       f"{label}: Fn::Sub resource {text!r} has no wildcard")
            rep.ok(bool(ids), f"{label}: resource {r!r} names a resource")
            for a in actions:
                for i in ids:
                    granted.add((a, i))
    return granted


def audit(cfn: dict, rep: Report) -> None:

    rep.section("roles: trust policy, no managed policies, statements")
    roles = resources_of(cfn, "AWS::IAM::Role")
    rep.eq(sorted(roles), sorted(GRANTS), "one role per function, no other roles")
    for name, role in roles.items():
        props = role["Properties"]
        rep.ok(not props.get("ManagedPolicyArns"), f"{name}: no managed policies",
               f"{props.get('ManagedPolicyArns')}")
        trust = props["AssumeRolePolicyDocument"]["Statement"]
        rep.ok(
            all(s.get("Principal") == {"Service": "lambda.amazonaws.com"} and s.get("Action") in ("sts:AssumeRole", ["sts:AssumeRole"])
                for s in trust),
            f"{name}: only lambda.amazonaws.com may assume it",
        )
        granted: set[tuple[str, str]] = set()
        for pol in props.get("Policies", []):
            for st in as_list(pol["PolicyDocument"]["Statement"]):
                granted |= check_statement(rep, f"{name}/{pol['PolicyName']}", st)
        extra = granted - GRANTS.get(name, set())
        rep.ok(not extra, f"{name}: grants nothing beyond its contract", f"extra: {sorted(extra)}")
        missing = ESSENTIAL.get(name, set()) - granted
        rep.ok(not missing, f"{name}: has what its function needs", f"missing: {sorted(missing)}")

    rep.section("stand-alone policies")
    for rtype in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy", "AWS::SQS::QueuePolicy", "AWS::SNS::TopicPolicy"):
        for name, res in resources_of(cfn, rtype).items():
            for st in as_list(res["Properties"]["PolicyDocument"]["Statement"]):
                rep.ok(st.get("Principal") not in ("*", {"AWS": "*"}) or st.get("Effect") == "Deny",
                       f"{name}: no public Allow")
                check_statement(rep, name, st)
    rep.ok(True, "no stand-alone policy grants beyond the roles above")

    rep.section("resource-based permissions (AWS::Lambda::Permission)")
    functions_by_role = {}
    for fname, fn in resources_of(cfn, "AWS::Lambda::Function").items():
        functions_by_role[fname] = refs_in(fn["Properties"]["Role"])
    for name, perm in resources_of(cfn, "AWS::Lambda::Permission").items():
        p = perm["Properties"]
        target = refs_in(p["FunctionName"])
        if p["Principal"] == "*":
            public_url = (
                (p["Action"] == "lambda:InvokeFunctionUrl" and p.get("FunctionUrlAuthType") == "NONE")
                or (p["Action"] == "lambda:InvokeFunction" and p.get("InvokedViaFunctionUrl") is True)
            )
            rep.ok(public_url and target == {"TriggerFunction"},
                   f"{name}: public only through the trigger's function URL (HMAC-checked in code)",
                   f"action={p['Action']} target={target}")
        else:
            rep.eq(p["Principal"], "events.amazonaws.com", f"{name}: principal")
            rep.eq(target, {"PollFunction"}, f"{name}: EventBridge may invoke only poll")
            rep.ok(refs_in(p.get("SourceArn", {})) and all(r.endswith("Rule") for r in refs_in(p["SourceArn"])),
                   f"{name}: scoped to one rule by SourceArn")

    rep.section("each function runs as its own role")
    expected_role = {
        "PollFunction": "PollRole",
        "SinkSalesforceFunction": "SinkSalesforceRole",
        "SinkMondayFunction": "SinkMondayRole",
        "ReplayFunction": "ReplayRole",
        "TriggerFunction": "TriggerRole",
    }
    for fname, want in expected_role.items():
        rep.eq(functions_by_role.get(fname), {want}, f"{fname} uses {want}")


def self_test(cfn: dict, rep: Report) -> None:
    """The audit must catch the mistakes it exists for: run it on broken copies."""
    import copy

    def broken(mutate) -> list[str]:
        bad = copy.deepcopy(cfn)
        mutate(bad["Resources"])
        inner = Report("self-test", quiet=True)
        import contextlib
        import io

        with contextlib.redirect_stdout(io.StringIO()):
            audit(bad, inner)
        return inner.failures

    def stmts(res, role):
        return res[role]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]

    cases = {
        "wildcard action (sqs:*)": lambda r: stmts(r, "PollRole").append(
            {"Effect": "Allow", "Action": "sqs:*", "Resource": {"Fn::GetAtt": ["SalesforceQueue", "Arn"]}}),
        "`*` resource on a restrictable action": lambda r: stmts(r, "ReplayRole").append(
            {"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": "*"}),
        "another function's secret": lambda r: stmts(r, "SinkSalesforceRole").append(
            {"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": {"Ref": "MondaySecret"}}),
        "another function's queue": lambda r: stmts(r, "SinkMondayRole").append(
            {"Effect": "Allow", "Action": "sqs:ReceiveMessage", "Resource": {"Fn::GetAtt": ["SalesforceQueue", "Arn"]}}),
        "index wildcard in Fn::Sub": lambda r: stmts(r, "PollRole").append(
            {"Effect": "Allow", "Action": "dynamodb:Query", "Resource": {"Fn::Sub": "${AuditTable.Arn}/*"}}),
        "managed policy": lambda r: r["TriggerRole"]["Properties"].__setitem__(
            "ManagedPolicyArns", ["arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"]),
        "PutMetricData without namespace condition": lambda r: stmts(r, "PollRole").append(
            {"Effect": "Allow", "Action": "cloudwatch:PutMetricData", "Resource": "*"}),
        "NotAction": lambda r: stmts(r, "ReplayRole").append(
            {"Effect": "Allow", "NotAction": "iam:*", "Resource": {"Fn::GetAtt": ["AuditTable", "Arn"]}}),
        "public permission on poll": lambda r: r.__setitem__("Extra", {
            "Type": "AWS::Lambda::Permission",
            "Properties": {"Action": "lambda:InvokeFunction", "FunctionName": {"Ref": "PollFunction"}, "Principal": "*"}}),
        "missing essential grant": lambda r: stmts(r, "TriggerRole").__setitem__(
            slice(None), [s for s in stmts(r, "TriggerRole") if s.get("Sid") != "StartPoll"]),
    }
    for what, mutate in cases.items():
        failures = broken(mutate)
        rep.ok(bool(failures), f"self-test: a template with {what} fails the audit")


def main() -> None:
    rep = Report("check_iam")
    cfn = translate()
    audit(cfn, rep)
    rep.section("self-test on deliberately broken copies")
    self_test(cfn, rep)
    rep.finish()


if __name__ == "__main__":
    sys.exit(main())
