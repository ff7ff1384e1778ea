"""Creates the translated stack in moto (MLC_TEST_AWS_ENDPOINT) and verifies every resource through
its own service's API - DynamoDB, SQS, EventBridge, IAM, Lambda, CloudWatch Logs, CloudWatch - not
through the stack status (moto reports CREATE_COMPLETE even for resources it silently skipped).

moto's CloudFormation has no model for some types and ignores some properties. Those are checked in
the translated template instead, and each such check says so (`[template]`):
- types: AWS::SecretsManager::Secret, AWS::CloudWatch::Alarm, AWS::Lambda::Url,
  AWS::Lambda::EventInvokeConfig (removed from the moto copy; moto would skip them anyway, and an
  Output that reads an attribute of a skipped resource makes moto fail with a 500);
- properties: DynamoDB TimeToLiveSpecification and PointInTimeRecoverySpecification; Lambda
  TracingConfig, Layers and LoggingConfig.
The stack is created with existing secret ARNs (the "bring your own secret" path, secrets created
through the Secrets Manager API first); the "create empty secrets" path is checked in the template.

The expected table shapes are read from the Rust source of truth, shared/aws/src/schema.rs.
"""

from __future__ import annotations

import copy
import io
import json
import os
import re
import sys
import time
import uuid
import zipfile

import boto3

from common import CODE_KEY, LAYER_KEY, ROOT, TEST_BUCKET, Report, refs_in, resources_of, translate

MOTO_UNSUPPORTED_TYPES = {
    "AWS::SecretsManager::Secret",
    "AWS::CloudWatch::Alarm",
    "AWS::Lambda::Url",
    "AWS::Lambda::EventInvokeConfig",
}
SINK_TIMEOUT_FACTOR = 6  # AWS: SQS visibility timeout >= 6 x the function timeout
FUNCTIONS = ["poll", "sink-salesforce", "sink-monday", "replay", "trigger"]
ENV_NAMES = {
    "MLC_CONTROL_TABLE", "MLC_RECORDS_TABLE", "MLC_AUDIT_TABLE",
    "MLC_SALESFORCE_QUEUE_URL", "MLC_SALESFORCE_DLQ_URL", "MLC_MONDAY_QUEUE_URL", "MLC_MONDAY_DLQ_URL",
    "MLC_FLOWS_FILE", "MLC_AUDIT_TTL_DAYS", "RUST_LOG",
}


# --- shared/aws/src/schema.rs -------------------------------------------------------------------
def rust_schema() -> dict[str, dict]:
    """{role: {pk, sk, indexes: {name: (pk, sk)}, ttl}} parsed from schema.rs."""
    src = (ROOT / "shared" / "aws" / "src" / "schema.rs").read_text()
    consts = dict(re.findall(r'pub const (\w+): &str = "([^"]*)";', src))
    indexes = {}
    for const, body in re.findall(r"pub const (\w+): IndexSpec = IndexSpec \{(.*?)\};", src, re.S):
        fields = dict(re.findall(r"(\w+): ([^,\n]+),", body))
        val = lambda v: v.strip().strip('"') if v.strip().startswith('"') else consts[v.strip()]
        indexes[const] = (val(fields["name"]), val(fields["partition_key"]), val(fields["sort_key"]))
    tables_src = re.search(r"pub const TABLES: \[TableSpec; \d+\] = \[(.*?)\n\];", src, re.S).group(1)
    out = {}
    for body in re.findall(r"TableSpec \{(.*?)\n    \}", tables_src, re.S):
        role = re.search(r"role: TableRole::(\w+)", body).group(1).lower()
        pk = consts[re.search(r"partition_key: (\w+)", body).group(1)]
        sk = consts[re.search(r"sort_key: (\w+)", body).group(1)]
        ix_names = re.findall(r"\w+", re.search(r"indexes: &\[(.*?)\]", body).group(1))
        ttl_m = re.search(r"ttl_attribute: Some\((\w+)\)", body)
        out[role] = {
            "pk": pk,
            "sk": sk,
            "indexes": {indexes[i][0]: (indexes[i][1], indexes[i][2]) for i in ix_names},
            "ttl": consts[ttl_m.group(1)] if ttl_m else None,
        }
    if set(out) != {"control", "records", "audit"}:
        raise SystemExit(f"could not parse TABLES from schema.rs: {out}")
    return out


# --- helpers ------------------------------------------------------------------------------------
def client(service: str):
    return boto3.client(service, endpoint_url=os.environ["MLC_TEST_AWS_ENDPOINT"],
                        region_name=os.environ.get("AWS_REGION", "us-east-1"))


def moto_copy(cfn: dict) -> dict:
    tpl = copy.deepcopy(cfn)
    dropped = {k for k, v in tpl["Resources"].items() if v["Type"] in MOTO_UNSUPPORTED_TYPES}
    for k in dropped:
        del tpl["Resources"][k]
    tpl["Outputs"] = {k: v for k, v in tpl.get("Outputs", {}).items() if not (refs_in(v) & dropped)}
    return tpl


def placeholder_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("bootstrap", "#!/bin/sh\necho placeholder\n")
    return buf.getvalue()


def wait_stack(cf, name: str) -> dict:
    for _ in range(240):
        st = cf.describe_stacks(StackName=name)["Stacks"][0]
        if not st["StackStatus"].endswith("IN_PROGRESS"):
            return st
        time.sleep(0.25)
    raise SystemExit(f"stack {name} still in progress")


def statements(doc) -> list[dict]:
    if isinstance(doc, str):
        doc = json.loads(doc)
    st = doc["Statement"]
    return st if isinstance(st, list) else [st]


def urlpath(url: str | None) -> str | None:
    from urllib.parse import urlparse

    return urlparse(url).path if url else None


def as_set(v) -> set:
    return set(v) if isinstance(v, list) else {v}


# --- checks -------------------------------------------------------------------------------------
def check_tables(rep: Report, prefix: str, schema: dict, cfn: dict) -> None:
    rep.section("DynamoDB (DescribeTable, DescribeContinuousBackups) vs shared/aws/src/schema.rs")
    ddb = client("dynamodb")
    by_name = {res["Properties"]["TableName"]["Fn::Sub"].replace("${Prefix}", prefix): (lid, res)
               for lid, res in resources_of(cfn, "AWS::DynamoDB::Table").items()}
    for role, spec in schema.items():
        name = f"{prefix}-{role}"
        t = ddb.describe_table(TableName=name)["Table"]
        keys = {k["KeyType"]: k["AttributeName"] for k in t["KeySchema"]}
        rep.eq(keys, {"HASH": spec["pk"], "RANGE": spec["sk"]}, f"{name}: key schema")
        rep.ok(all(a["AttributeType"] == "S" for a in t["AttributeDefinitions"]), f"{name}: every key attribute is a string")
        rep.eq(t.get("BillingModeSummary", {}).get("BillingMode"), "PAY_PER_REQUEST", f"{name}: on-demand billing")
        gsis = {g["IndexName"]: ({k["KeyType"]: k["AttributeName"] for k in g["KeySchema"]}, g["Projection"]["ProjectionType"])
                for g in t.get("GlobalSecondaryIndexes", [])}
        want = {n: ({"HASH": pk, "RANGE": sk}, "ALL") for n, (pk, sk) in spec["indexes"].items()}
        rep.eq(gsis, want, f"{name}: global secondary indexes")
        cb = ddb.describe_continuous_backups(TableName=name)["ContinuousBackupsDescription"]
        rep.eq(cb["ContinuousBackupsStatus"], "ENABLED", f"{name}: continuous backups")
        # moto's CloudFormation ignores TimeToLiveSpecification / PointInTimeRecoverySpecification:
        lid, res = by_name[name]
        props = res["Properties"]
        rep.eq(props.get("PointInTimeRecoverySpecification"), {"PointInTimeRecoveryEnabled": True},
               f"[template] {lid}: point-in-time recovery")
        want_ttl = {"AttributeName": spec["ttl"], "Enabled": True} if spec["ttl"] else None
        rep.eq(props.get("TimeToLiveSpecification"), want_ttl, f"[template] {lid}: TTL as schema.rs says")
        rep.eq(props.get("SSESpecification"), {"SSEEnabled": True}, f"[template] {lid}: SSE (KMS, AWS managed key)")
        rep.eq(props.get("DeletionPolicy", res.get("DeletionPolicy")), "Retain", f"[template] {lid}: kept when the stack is deleted")
    rep.eq(len(by_name), len(schema), "[template] no table beyond schema.rs TABLES")


def check_queues(rep: Report, prefix: str, params: dict, sink_timeouts: dict, cfn: dict) -> dict:
    rep.section("SQS (GetQueueAttributes)")
    sqs = client("sqs")
    arns = {}
    for dest in ("salesforce", "monday"):
        main_url = sqs.get_queue_url(QueueName=f"{prefix}-{dest}.fifo")["QueueUrl"]
        dlq_url = sqs.get_queue_url(QueueName=f"{prefix}-{dest}-dlq.fifo")["QueueUrl"]
        main = sqs.get_queue_attributes(QueueUrl=main_url, AttributeNames=["All"])["Attributes"]
        dlq = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["All"])["Attributes"]
        arns[dest], arns[f"{dest}-dlq"] = main["QueueArn"], dlq["QueueArn"]
        for label, a in ((f"{dest}.fifo", main), (f"{dest}-dlq.fifo", dlq)):
            rep.eq(a.get("FifoQueue"), "true", f"{label}: FIFO")
            rep.eq(a.get("ContentBasedDeduplication"), "false", f"{label}: content-based dedup off (we send MessageDeduplicationId)")
            rep.eq(a.get("SqsManagedSseEnabled"), "true", f"{label}: SSE")
            rep.eq(a.get("MessageRetentionPeriod"), "1209600", f"{label}: 14-day retention")
        redrive = json.loads(main.get("RedrivePolicy", "{}"))
        rep.eq(redrive.get("deadLetterTargetArn"), dlq["QueueArn"], f"{dest}.fifo: redrive to its own DLQ")
        rep.eq(int(redrive.get("maxReceiveCount", -1)), int(params["MaxReceiveCount"]), f"{dest}.fifo: maxReceiveCount = parameter")
        vis = int(main["VisibilityTimeout"])
        timeout = sink_timeouts[dest]
        rep.ok(vis >= SINK_TIMEOUT_FACTOR * timeout,
               f"{dest}.fifo: visibility {vis}s >= {SINK_TIMEOUT_FACTOR} x sink timeout {timeout}s")
        allow = dlq.get("RedriveAllowPolicy")
        if allow:
            allow = json.loads(allow)
            rep.eq((allow.get("redrivePermission"), allow.get("sourceQueueArns")), ("byQueue", [main["QueueArn"]]),
                   f"{dest}-dlq.fifo: only its main queue may redrive into it")
        else:  # moto does not apply RedriveAllowPolicy from CloudFormation
            dlq_res = cfn["Resources"][f"{dest.capitalize()}DeadLetterQueue"]["Properties"]["RedriveAllowPolicy"]
            src = dlq_res["sourceQueueArns"][0]["Fn::Sub"].replace("${Prefix}", prefix)
            rep.ok(dlq_res["redrivePermission"] == "byQueue" and src.endswith(f":{prefix}-{dest}.fifo"),
                   f"[template] {dest}-dlq.fifo: only its main queue may redrive into it")
    return arns


def check_rules(rep: Report, prefix: str, flows: dict[str, str], poll_arn: str) -> None:
    rep.section("EventBridge (DescribeRule, ListTargetsByRule)")
    ev = client("events")
    names = [r["Name"] for r in ev.list_rules(NamePrefix=f"{prefix}-")["Rules"]]
    rep.eq(sorted(names), sorted(f"{prefix}-poll-{f}" for f in flows), "one rule per configured flow, none for empty slots")
    for flow, schedule in flows.items():
        name = f"{prefix}-poll-{flow}"
        r = ev.describe_rule(Name=name)
        rep.eq(r.get("ScheduleExpression"), schedule, f"{name}: schedule")
        rep.eq(r.get("State"), "ENABLED", f"{name}: enabled")
        targets = ev.list_targets_by_rule(Rule=name)["Targets"]
        rep.eq([t["Arn"] for t in targets], [poll_arn], f"{name}: targets the poll function only")
        rep.eq(json.loads(targets[0].get("Input", "null")) if targets else None, {"flow": flow}, f"{name}: input {{\"flow\": \"{flow}\"}}")


def check_roles(rep: Report, prefix: str, region: str, arns: dict) -> None:
    rep.section("IAM (GetRole, GetRolePolicy, ListAttachedRolePolicies) with resolved ARNs")
    iam = client("iam")
    q = arns
    expect = {
        # role: {action: set of resource ARNs}
        "poll": {
            "sqs:SendMessage": {q["salesforce"], q["monday"]},
            "secretsmanager:GetSecretValue": {q["secret:syspro"]},
            "dynamodb:BatchWriteItem": {q["table:records"], q["table:audit"]},
        },
        "sink-salesforce": {
            "sqs:ReceiveMessage": {q["salesforce"]},
            "sqs:DeleteMessage": {q["salesforce"]},
            "sqs:SendMessage": {q["salesforce"], q["salesforce-dlq"]},
            "secretsmanager:GetSecretValue": {q["secret:salesforce"]},
        },
        "sink-monday": {
            "sqs:ReceiveMessage": {q["monday"]},
            "sqs:DeleteMessage": {q["monday"]},
            "sqs:SendMessage": {q["monday"], q["monday-dlq"]},
            "secretsmanager:GetSecretValue": {q["secret:monday"]},
        },
        "replay": {
            "sqs:ReceiveMessage": {q["salesforce-dlq"], q["monday-dlq"]},
            "sqs:DeleteMessage": {q["salesforce-dlq"], q["monday-dlq"]},
            "sqs:SendMessage": {q["salesforce"], q["monday"], q["salesforce-dlq"], q["monday-dlq"]},
            "secretsmanager:GetSecretValue": set(),
        },
        "trigger": {
            "lambda:InvokeFunction": {q["function:poll"]},
            "secretsmanager:GetSecretValue": {q["secret:trigger"]},
            "sqs:SendMessage": set(),
        },
    }
    for fn, want in expect.items():
        role_name = f"{prefix}-{fn}-{region}"
        role = iam.get_role(RoleName=role_name)["Role"]
        trust = statements(role["AssumeRolePolicyDocument"])
        rep.eq([s.get("Principal") for s in trust], [{"Service": "lambda.amazonaws.com"}], f"{role_name}: trusted by Lambda only")
        rep.eq(iam.list_attached_role_policies(RoleName=role_name)["AttachedPolicies"], [], f"{role_name}: no managed policies")
        granted: dict[str, set] = {}
        for pname in iam.list_role_policies(RoleName=role_name)["PolicyNames"]:
            doc = iam.get_role_policy(RoleName=role_name, PolicyName=pname)["PolicyDocument"]
            if isinstance(doc, str):
                try:
                    doc = json.loads(doc)
                except json.JSONDecodeError:
                    import ast
                    doc = ast.literal_eval(doc)  # moto returns a Python repr for CloudFormation roles
            for st in statements(doc):
                if st.get("Effect") != "Allow":
                    continue
                for a in as_set(st["Action"]):
                    granted.setdefault(a, set()).update(as_set(st["Resource"]))
        for action, resources in want.items():
            rep.eq(granted.get(action, set()), resources, f"{role_name}: {action} only on its own resources")
        logs = granted.get("logs:PutLogEvents", set())
        rep.ok(len(logs) == 1 and f"log-group:/aws/lambda/{prefix}-{fn}:" in next(iter(logs)),
               f"{role_name}: logs only into /aws/lambda/{prefix}-{fn}", f"{logs}")


def check_functions(rep: Report, prefix: str, params: dict, arns: dict, cfn: dict) -> dict:
    rep.section("Lambda (GetFunctionConfiguration, GetFunctionConcurrency, ListEventSourceMappings)")
    lam = client("lambda")
    configs = {}
    for fn in FUNCTIONS:
        c = lam.get_function_configuration(FunctionName=f"{prefix}-{fn}")
        configs[fn] = c
        rep.eq((c["Runtime"], c["Handler"], c["Architectures"]), ("provided.al2023", "bootstrap", [params.get("Architecture", "x86_64")]),
               f"{prefix}-{fn}: provided.al2023 / bootstrap / architecture")
        env = {k: str(v) for k, v in c.get("Environment", {}).get("Variables", {}).items()}
        want_names = ENV_NAMES | ({"MLC_POLL_FUNCTION"} if fn == "trigger" else set())
        rep.eq(set(env), want_names, f"{prefix}-{fn}: environment variable names")
        rep.eq((env.get("MLC_CONTROL_TABLE"), env.get("MLC_RECORDS_TABLE"), env.get("MLC_AUDIT_TABLE")),
               (f"{prefix}-control", f"{prefix}-records", f"{prefix}-audit"), f"{prefix}-{fn}: table names")
        sqs = client("sqs")
        for var, qname in (("MLC_SALESFORCE_QUEUE_URL", "salesforce.fifo"), ("MLC_SALESFORCE_DLQ_URL", "salesforce-dlq.fifo"),
                           ("MLC_MONDAY_QUEUE_URL", "monday.fifo"), ("MLC_MONDAY_DLQ_URL", "monday-dlq.fifo")):
            # The host differs between moto's CloudFormation Ref and its API; the path names the queue.
            url = sqs.get_queue_url(QueueName=f"{prefix}-{qname}")["QueueUrl"]
            rep.eq(urlpath(env.get(var)), urlpath(url), f"{prefix}-{fn}: {var}")
        rep.eq(env.get("MLC_FLOWS_FILE"), "/opt/flows.toml", f"{prefix}-{fn}: MLC_FLOWS_FILE")
        rep.eq(env.get("MLC_AUDIT_TTL_DAYS"), "400", f"{prefix}-{fn}: MLC_AUDIT_TTL_DAYS")
        if fn == "trigger":
            rep.eq(env.get("MLC_POLL_FUNCTION"), f"{prefix}-poll", "trigger: MLC_POLL_FUNCTION")
    rep.eq((configs["poll"]["Timeout"], configs["poll"]["MemorySize"]), (900, 512), "poll: 900 s / 512 MB")
    for fn in ("sink-salesforce", "sink-monday"):
        rep.ok(configs[fn]["Timeout"] <= 300, f"{fn}: timeout {configs[fn]['Timeout']} s")
    conc = lam.get_function_concurrency(FunctionName=f"{prefix}-trigger").get("ReservedConcurrentExecutions")
    rep.eq(conc, int(params.get("TriggerReservedConcurrency", 5)), "trigger: reserved concurrency (throttle)")

    for fn, dest, cap in (("sink-salesforce", "salesforce", "SalesforceMaxConcurrency"), ("sink-monday", "monday", "MondayMaxConcurrency")):
        esms = lam.list_event_source_mappings(FunctionName=f"{prefix}-{fn}")["EventSourceMappings"]
        rep.eq([e["EventSourceArn"] for e in esms], [arns[dest]], f"{fn}: one event source, its own queue")
        if esms:
            e = esms[0]
            rep.eq(e.get("BatchSize"), 10, f"{fn}: batch size 10")
            rep.eq(e.get("FunctionResponseTypes"), ["ReportBatchItemFailures"], f"{fn}: ReportBatchItemFailures")
            rep.eq(e.get("ScalingConfig", {}).get("MaximumConcurrency"), int(params[cap]), f"{fn}: MaximumConcurrency = {cap}")
    for fn in ("poll", "replay", "trigger"):
        rep.eq(lam.list_event_source_mappings(FunctionName=f"{prefix}-{fn}")["EventSourceMappings"], [], f"{fn}: no queue event source")

    # moto ignores these Lambda properties in CloudFormation: checked in the translated template.
    for lid, res in resources_of(cfn, "AWS::Lambda::Function").items():
        p = res["Properties"]
        rep.eq(p.get("TracingConfig"), {"Mode": "Active"}, f"[template] {lid}: tracing")
        rep.eq(p.get("LoggingConfig", {}).get("LogFormat"), "JSON", f"[template] {lid}: JSON logs")
        rep.ok(refs_in(p.get("LoggingConfig", {}).get("LogGroup")) == {lid.replace("Function", "LogGroup")},
               f"[template] {lid}: logs to its own log group")
        rep.ok(len(p.get("Layers", [])) == 1, f"[template] {lid}: flows layer attached")
        rep.eq(res.get("Metadata", {}).get("BuildMethod"), "rust-cargolambda", f"[template] {lid}: BuildMethod rust-cargolambda")
    return configs


def check_logs_and_dashboard(rep: Report, prefix: str, params: dict) -> None:
    rep.section("CloudWatch Logs (DescribeLogGroups) and dashboard (GetDashboard)")
    logs = client("logs")
    groups = {g["logGroupName"]: g for g in logs.describe_log_groups(logGroupNamePrefix=f"/aws/lambda/{prefix}-")["logGroups"]}
    rep.eq(sorted(groups), sorted(f"/aws/lambda/{prefix}-{f}" for f in FUNCTIONS), "one log group per function")
    for name, g in groups.items():
        rep.eq(g.get("retentionInDays"), int(params.get("LogRetentionDays", 30)), f"{name}: retention")
    body = json.loads(client("cloudwatch").get_dashboard(DashboardName=f"{prefix}-ml-connector")["DashboardBody"])
    text = json.dumps(body)
    rep.ok(len(body.get("widgets", [])) >= 4, "dashboard has its widgets")
    rep.ok("FlowLagSeconds" in text and f"{prefix}-salesforce-dlq.fifo" in text and f"{prefix}-sink-monday" in text,
           "dashboard shows flow lag, DLQs and functions")


def check_template_only(rep: Report, cfn: dict) -> None:
    rep.section("[template] resources moto does not create: alarms, secrets, function URL, async config")
    alarms = resources_of(cfn, "AWS::CloudWatch::Alarm")
    def alarm_on(namespace, metric, dim_ref):
        return [k for k, a in alarms.items() if a["Properties"]["Namespace"] == namespace
                and a["Properties"]["MetricName"] == metric
                and dim_ref in refs_in(a["Properties"]["Dimensions"])]
    for dlq in ("SalesforceDeadLetterQueue", "MondayDeadLetterQueue"):
        found = alarm_on("AWS/SQS", "ApproximateNumberOfMessagesVisible", dlq)
        rep.ok(len(found) == 1 and alarms[found[0]]["Properties"]["Threshold"] == 0
               and alarms[found[0]]["Properties"]["ComparisonOperator"] == "GreaterThanThreshold",
               f"alarm: {dlq} depth > 0")
    for q in ("SalesforceQueue", "MondayQueue"):
        rep.ok(len(alarm_on("AWS/SQS", "ApproximateAgeOfOldestMessage", q)) == 1, f"alarm: {q} age of oldest message")
    for fn in ("PollFunction", "SinkSalesforceFunction", "SinkMondayFunction", "ReplayFunction", "TriggerFunction"):
        for metric in ("Errors", "Throttles"):
            rep.ok(len(alarm_on("AWS/Lambda", metric, fn)) == 1, f"alarm: {fn} {metric}")
    lag = [k for k, a in alarms.items() if a["Properties"]["Namespace"] == "MlConnector" and a["Properties"]["MetricName"] == "FlowLagSeconds"]
    rep.eq(len(lag), 4, "alarm: FlowLagSeconds (MlConnector) per flow slot")
    rep.ok(all(alarms[k]["Properties"].get("TreatMissingData") == "breaching" for k in lag), "flow-lag alarms fire when the metric stops")
    rep.ok(all(refs_in(a["Properties"].get("AlarmActions")) >= {"AlarmTopicArn"} for a in alarms.values()),
           "every alarm notifies the AlarmTopicArn parameter")

    secrets = resources_of(cfn, "AWS::SecretsManager::Secret")
    rep.eq(sorted(secrets), ["MondaySecret", "SalesforceSecret", "SysproSecret", "TriggerSecret"], "four secrets")
    for k, s in secrets.items():
        p = s["Properties"]
        rep.ok("SecretString" not in p, f"{k}: no value in the template")
        rep.ok(bool(s.get("Condition")), f"{k}: created only when no existing ARN is given")
        rep.ok(bool(p.get("Description")), f"{k}: described")
    rep.ok("GenerateSecretString" in secrets["TriggerSecret"]["Properties"], "TriggerSecret: value generated by Secrets Manager")

    urls = resources_of(cfn, "AWS::Lambda::Url")
    rep.eq([(refs_in(u["Properties"]["TargetFunctionArn"]), u["Properties"]["AuthType"]) for u in urls.values()],
           [({"TriggerFunction"}, "NONE")], "function URL: trigger only, AuthType NONE (HMAC in code)")
    eic = resources_of(cfn, "AWS::Lambda::EventInvokeConfig")
    rep.eq([(refs_in(e["Properties"]["FunctionName"]), e["Properties"].get("MaximumRetryAttempts")) for e in eic.values()],
           [({"PollFunction"}, 0)], "poll: no automatic async retries (the next schedule re-polls)")


def main() -> None:
    rep = Report("check_stack")
    if not os.environ.get("MLC_TEST_AWS_ENDPOINT"):
        raise SystemExit("MLC_TEST_AWS_ENDPOINT is not set (tests/run starts moto and sets it)")
    region = os.environ.get("AWS_REGION", "us-east-1")
    t0 = time.time()
    schema = rust_schema()
    cfn = translate()
    prefix = "iac" + uuid.uuid4().hex[:8]  # moto is shared with the other tests of tests/run

    s3 = client("s3")
    s3.create_bucket(Bucket=TEST_BUCKET)
    s3.put_object(Bucket=TEST_BUCKET, Key=CODE_KEY, Body=placeholder_zip())
    s3.put_object(Bucket=TEST_BUCKET, Key=LAYER_KEY, Body=placeholder_zip())
    sm = client("secretsmanager")
    secrets = {k: sm.create_secret(Name=f"{prefix}/{k}", Description="iac check")["ARN"]
               for k in ("syspro", "salesforce", "monday", "trigger")}
    topic = client("sns").create_topic(Name=f"{prefix}-alarms")["TopicArn"]
    flows = {"acme-sf": "rate(15 minutes)", "globex-monday": "rate(5 minutes)"}
    params = {
        "Prefix": prefix,
        "Flow1Id": "acme-sf",
        "Flow2Id": "globex-monday",
        "Flow2Schedule": "rate(5 minutes)",
        "AlarmTopicArn": topic,
        "MaxReceiveCount": "1000",
        "SalesforceMaxConcurrency": "5",
        "MondayMaxConcurrency": "2",
        "SysproSecretArn": secrets["syspro"],
        "SalesforceSecretArn": secrets["salesforce"],
        "MondaySecretArn": secrets["monday"],
        "TriggerSecretArn": secrets["trigger"],
    }
    cf = client("cloudformation")
    cf.create_stack(
        StackName=prefix,
        TemplateBody=json.dumps(moto_copy(cfn)),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in params.items()],
        Capabilities=["CAPABILITY_NAMED_IAM"],
    )
    st = wait_stack(cf, prefix)
    print(f"stack {prefix}: {st['StackStatus']} in moto ({time.time() - t0:.1f}s); checking each service")

    try:
        lam = client("lambda")
        sink_timeouts = {d: lam.get_function_configuration(FunctionName=f"{prefix}-sink-{d}")["Timeout"]
                         for d in ("salesforce", "monday")}
        check_tables(rep, prefix, schema, cfn)
        arns = check_queues(rep, prefix, params, sink_timeouts, cfn)
        acct_tables = {f"table:{r}": client("dynamodb").describe_table(TableName=f"{prefix}-{r}")["Table"]["TableArn"]
                       for r in ("control", "records", "audit")}
        arns.update(acct_tables)
        arns.update({f"secret:{k}": v for k, v in secrets.items()})
        poll_arn = lam.get_function_configuration(FunctionName=f"{prefix}-poll")["FunctionArn"]
        arns["function:poll"] = poll_arn
        check_rules(rep, prefix, flows, poll_arn)
        check_roles(rep, prefix, region, arns)
        check_functions(rep, prefix, params, arns, cfn)
        check_logs_and_dashboard(rep, prefix, params)
        check_template_only(rep, cfn)
    finally:
        rep._close_section()
        print(f"check_stack: {time.time() - t0:.1f}s")
        cf.delete_stack(StackName=prefix)
        for k in secrets.values():
            sm.delete_secret(SecretId=k, ForceDeleteWithoutRecovery=True)
        for r in ("control", "records", "audit"):  # DeletionPolicy Retain keeps them
            try:
                client("dynamodb").delete_table(TableName=f"{prefix}-{r}")
            except Exception:
                pass
    rep.finish()


if __name__ == "__main__":
    sys.exit(main())
