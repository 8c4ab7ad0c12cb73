"""Creating template.yaml's resources in the emulator, through the same boto3 calls as on AWS."""

from __future__ import annotations

import json
import logging
import secrets
import string
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pointbridge.sandbox.template import (
    ACCOUNT_ID,
    SERVERLESS_API,
    SERVERLESS_FUNCTION,
    Resolver,
    TemplateError,
    parameter_values,
)

if TYPE_CHECKING:
    from collections.abc import Callable

log = logging.getLogger("pointbridge.sandbox")

IMPLICIT_API = "ServerlessRestApi"
CUSTOM_RESOURCE = "AWS::CloudFormation::CustomResource"


def is_custom_resource(kind: str) -> bool:
    return kind.startswith("Custom::") or kind == CUSTOM_RESOURCE


@dataclass
class Provisioned:
    logical_id: str
    type: str
    physical_id: str  # what Ref returns: table/bucket/function name, queue URL, topic ARN
    arn: str
    attributes: dict[str, str] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"type": self.type, "physical_id": self.physical_id, "arn": self.arn} | self.attributes


def _generated_secret(spec: dict[str, Any]) -> str:
    """GenerateSecretString's password (length, exclusions), from the system's random source."""
    if "SecretStringTemplate" in spec or "GenerateStringKey" in spec:
        raise TemplateError("GenerateSecretString with a template (a JSON secret) is not emulated")
    alphabet = string.ascii_letters + string.digits
    if not spec.get("ExcludePunctuation"):
        alphabet += string.punctuation
    excluded = set(str(spec.get("ExcludeCharacters", "")))
    if spec.get("ExcludeUppercase"):
        excluded |= set(string.ascii_uppercase)
    if spec.get("ExcludeLowercase"):
        excluded |= set(string.ascii_lowercase)
    if spec.get("ExcludeNumbers"):
        excluded |= set(string.digits)
    allowed = "".join(c for c in alphabet if c not in excluded)
    return "".join(secrets.choice(allowed) for _ in range(int(spec.get("PasswordLength", 32))))


def _attribute_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


class Provisioner:
    """Provisions on demand: resolving one resource's properties provisions what they point at."""

    def __init__(
        self,
        template: dict[str, Any],
        parameters: dict[str, str],
        region: str,
        client: Callable[[str], Any],
        queue_overrides: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        self.template = template
        self.region = region
        self.client = client
        self.queue_overrides = queue_overrides or {}
        self.resources: dict[str, Provisioned] = {}
        self._in_progress: set[str] = set()
        self.resolver = Resolver(
            parameter_values(template, parameters),
            region,
            ref=self.ref,
            get_att=self.get_att,
            conditions=template.get("Conditions", {}),
        )
        self.stack = self.resolver.pseudo["AWS::StackName"]
        self.skipped: list[str] = []
        # Resources whose Condition is false: not created, as CloudFormation leaves them out.
        self.absent: list[str] = []

    # -- intrinsic callbacks ------------------------------------------------------------------
    def ref(self, logical_id: str) -> str:
        return self.ensure(logical_id).physical_id

    def get_att(self, logical_id: str, attribute: str) -> str:
        resource = self.ensure(logical_id)
        if attribute == "Arn":
            return resource.arn
        if attribute in resource.attributes:
            return resource.attributes[attribute]
        raise TemplateError(f"{logical_id}.{attribute} is not known to the sandbox")

    # -- provisioning -------------------------------------------------------------------------
    def provision_all(self) -> dict[str, Provisioned]:
        for logical_id, resource in self.template.get("Resources", {}).items():
            if "Condition" in resource and not self.resolver.condition(str(resource["Condition"])):
                self.absent.append(logical_id)
                continue
            self.ensure(logical_id)
        return self.resources

    def ensure(self, logical_id: str) -> Provisioned:
        if logical_id in self.resources:
            return self.resources[logical_id]
        if logical_id == IMPLICIT_API:
            made = Provisioned(logical_id, SERVERLESS_API, "sandboxapi", "")
            self.resources[logical_id] = made
            return made
        if logical_id not in self.template.get("Resources", {}):
            raise TemplateError(f"Ref to unknown resource or parameter {logical_id}")
        if logical_id in self.absent:
            raise TemplateError(f"{logical_id} is referred to, but its Condition is false")
        if logical_id in self._in_progress:
            raise TemplateError(f"circular reference through {logical_id}")
        self._in_progress.add(logical_id)
        try:
            made = self._create(logical_id, self.template["Resources"][logical_id])
        finally:
            self._in_progress.discard(logical_id)
        self.resources[logical_id] = made
        return made

    def _name(self, logical_id: str, props: dict[str, Any], key: str) -> str:
        if key in props:
            return str(self.resolver.resolve(props[key]))
        return f"{self.stack}-{logical_id}"

    def _create(self, logical_id: str, resource: dict[str, Any]) -> Provisioned:
        kind = resource.get("Type", "")
        props = resource.get("Properties", {})
        creators: dict[str, Callable[[str, dict[str, Any]], Provisioned]] = {
            "AWS::DynamoDB::Table": self._table,
            "AWS::SQS::Queue": self._queue,
            "AWS::S3::Bucket": self._bucket,
            "AWS::SNS::Topic": self._topic,
            "AWS::Events::EventBus": self._event_bus,
            "AWS::Events::Rule": self._rule,
            "AWS::SQS::QueuePolicy": self._queue_policy,
            "AWS::SNS::Subscription": self._subscription,
            "AWS::Logs::LogGroup": self._log_group,
            "AWS::CloudWatch::Alarm": self._alarm,
            "AWS::SecretsManager::Secret": self._secret,
            "AWS::KMS::Key": self._kms_key,
            SERVERLESS_FUNCTION: self._function,
            SERVERLESS_API: self._api,
        }
        if is_custom_resource(kind):
            # Created by the Sandbox once its functions run (the handler is one of them).
            return Provisioned(logical_id, kind, logical_id, "")
        creator = creators.get(kind)
        if creator is None:
            log.info("sandbox: skipping %s (%s): not emulated", logical_id, kind)
            self.skipped.append(logical_id)
            return Provisioned(logical_id, kind, logical_id, "")
        return creator(logical_id, props)

    def _table(self, logical_id: str, props: dict[str, Any]) -> Provisioned:
        ddb = self.client("dynamodb")
        p = self.resolver.resolve(props)
        name = self._name(logical_id, p, "TableName")
        args: dict[str, Any] = {
            "TableName": name,
            "AttributeDefinitions": p["AttributeDefinitions"],
            "KeySchema": p["KeySchema"],
            "BillingMode": p.get("BillingMode", "PROVISIONED"),
        }
        for key in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes", "ProvisionedThroughput"):
            if key in p:
                args[key] = p[key]
        if "StreamSpecification" in p:
            args["StreamSpecification"] = {"StreamEnabled": True} | p["StreamSpecification"]
        if p.get("SSESpecification", {}).get("SSEEnabled"):
            args["SSESpecification"] = {"Enabled": True}
        description = ddb.create_table(**args)["TableDescription"]
        if p.get("PointInTimeRecoverySpecification", {}).get("PointInTimeRecoveryEnabled"):
            ddb.update_continuous_backups(
                TableName=name, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
            )
        if p.get("TimeToLiveSpecification", {}).get("Enabled"):
            ddb.update_time_to_live(TableName=name, TimeToLiveSpecification=p["TimeToLiveSpecification"])
        attributes = {}
        if "LatestStreamArn" in description:
            attributes["StreamArn"] = description["LatestStreamArn"]
        return Provisioned(logical_id, "AWS::DynamoDB::Table", name, description["TableArn"], attributes)

    def _queue(self, logical_id: str, props: dict[str, Any]) -> Provisioned:
        sqs = self.client("sqs")
        p = self.resolver.resolve(props) | self.queue_overrides.get(logical_id, {})
        name = self._name(logical_id, p, "QueueName")
        if p.get("FifoQueue") and not name.endswith(".fifo"):
            name += ".fifo"
        attributes = {key: _attribute_value(value) for key, value in p.items() if key not in ("QueueName", "Tags")}
        url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        return Provisioned(logical_id, "AWS::SQS::Queue", url, arn, {"QueueName": name, "QueueUrl": url})

    def _bucket(self, logical_id: str, props: dict[str, Any]) -> Provisioned:
        p = self.resolver.resolve({k: v for k, v in props.items() if k != "NotificationConfiguration"})
        name = self._name(logical_id, p, "BucketName").lower()
        args: dict[str, Any] = {"Bucket": name}
        if self.region != "us-east-1":
            args["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
        if p.get("ObjectLockEnabled"):
            args["ObjectLockEnabledForBucket"] = True
        s3 = self.client("s3")
        s3.create_bucket(**args)
        if "VersioningConfiguration" in p:
            s3.put_bucket_versioning(Bucket=name, VersioningConfiguration=p["VersioningConfiguration"])
        if "ObjectLockConfiguration" in p:
            # Moto keeps each object's retention from the bucket's default and refuses to delete a
            # locked version, as S3 does (a delete without a version only adds a delete marker).
            lock = p["ObjectLockConfiguration"]
            retention = {
                k: int(v) if k in ("Days", "Years") else v for k, v in lock["Rule"]["DefaultRetention"].items()
            }
            s3.put_object_lock_configuration(
                Bucket=name,
                ObjectLockConfiguration={"ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": retention}},
            )
        return Provisioned(
            logical_id,
            "AWS::S3::Bucket",
            name,
            f"arn:aws:s3:::{name}",
            {"DomainName": f"{name}.s3.amazonaws.com"},
        )

    def _topic(self, logical_id: str, props: dict[str, Any]) -> Provisioned:
        p = self.resolver.resolve(props)
        name = self._name(logical_id, p, "TopicName")
        arn = self.client("sns").create_topic(Name=name)["TopicArn"]
        return Provisioned(logical_id, "AWS::SNS::Topic", arn, arn, {"TopicName": name})

    def _subscription(self, logical_id: str, props: dict[str, Any]) -> Provisioned:
        p = self.resolver.resolve(props)
        arn = self.client("sns").subscribe(TopicArn=p["TopicArn"], Protocol=p["Protocol"], Endpoint=p["Endpoint"])[
            "SubscriptionArn"
        ]
        return Provisioned(logical_id, "AWS::SNS::Subscription", arn, arn)

    def _log_group(self, logical_id: str, props: dict[str, Any]) -> Provisioned:
        p = self.resolver.resolve(props)
        name = self._name(logical_id, p, "LogGroupName")
        logs = self.client("logs")
        logs.create_log_group(logGroupName=name)
        if "RetentionInDays" in p:
            logs.put_retention_policy(logGroupName=name, retentionInDays=int(p["RetentionInDays"]))
        arn = f"arn:aws:logs:{self.region}:{ACCOUNT_ID}:log-group:{name}"
        return Provisioned(logical_id, "AWS::Logs::LogGroup", name, arn + ":*")

    def _alarm(self, logical_id: str, props: dict[str, Any]) -> Provisioned:
        # Created so a test (or an operator) can see each alarm and where it notifies; not evaluated.
        p = self.resolver.resolve(props)
        name = self._name(logical_id, p, "AlarmName")
        args = {k: v for k, v in p.items() if k != "AlarmName"}
        self.client("cloudwatch").put_metric_alarm(AlarmName=name, **args)
        arn = f"arn:aws:cloudwatch:{self.region}:{ACCOUNT_ID}:alarm:{name}"
        return Provisioned(logical_id, "AWS::CloudWatch::Alarm", name, arn)

    def _secret(self, logical_id: str, props: dict[str, Any]) -> Provisioned:
        p = self.resolver.resolve(props)
        name = self._name(logical_id, p, "Name")
        if "SecretString" in p:
            value = str(p["SecretString"])
        elif "GenerateSecretString" in p:
            value = _generated_secret(p["GenerateSecretString"])
        else:
            raise TemplateError(f"{logical_id}: a secret needs SecretString or GenerateSecretString")
        args = {"Name": name, "SecretString": value}
        if "Description" in p:
            args["Description"] = str(p["Description"])
        arn = self.client("secretsmanager").create_secret(**args)["ARN"]
        # Ref gives the ARN, as CloudFormation's does for a secret.
        return Provisioned(logical_id, "AWS::SecretsManager::Secret", arn, arn, {"Name": name})

    def _kms_key(self, logical_id: str, props: dict[str, Any]) -> Provisioned:
        p = self.resolver.resolve(props)
        args = {
            "KeySpec": str(p.get("KeySpec", "SYMMETRIC_DEFAULT")),
            "KeyUsage": str(p.get("KeyUsage", "ENCRYPT_DECRYPT")),
            "Description": str(p.get("Description", "")),
        }
        if "KeyPolicy" in p:
            args["Policy"] = json.dumps(p["KeyPolicy"])
        meta = self.client("kms").create_key(**args)["KeyMetadata"]
        # Ref gives the key id and Arn its ARN, as CloudFormation's do.
        return Provisioned(logical_id, "AWS::KMS::Key", meta["KeyId"], meta["Arn"], {"KeyId": meta["KeyId"]})

    def _event_bus(self, logical_id: str, props: dict[str, Any]) -> Provisioned:
        p = self.resolver.resolve(props)
        name = self._name(logical_id, p, "Name")
        arn = self.client("events").create_event_bus(Name=name)["EventBusArn"]
        return Provisioned(logical_id, "AWS::Events::EventBus", name, arn, {"Name": name})

    def _rule(self, logical_id: str, props: dict[str, Any]) -> Provisioned:
        # Rules with an event pattern and targets moto delivers to (SQS in the sandbox): the CRM queue.
        p = self.resolver.resolve(props)
        name = self._name(logical_id, p, "Name")
        events = self.client("events")
        bus = str(p.get("EventBusName", "default"))
        args: dict[str, Any] = {"Name": name, "EventBusName": bus, "State": p.get("State", "ENABLED")}
        if "EventPattern" in p:
            args["EventPattern"] = json.dumps(p["EventPattern"])
        if "ScheduleExpression" in p:
            args["ScheduleExpression"] = p["ScheduleExpression"]
        arn = events.put_rule(**args)["RuleArn"]
        targets = [{"Id": str(t["Id"]), "Arn": str(t["Arn"])} for t in p.get("Targets", [])]
        if targets:
            events.put_targets(Rule=name, EventBusName=bus, Targets=targets)
        return Provisioned(logical_id, "AWS::Events::Rule", f"{bus}|{name}", arn)

    def _queue_policy(self, logical_id: str, props: dict[str, Any]) -> Provisioned:
        p = self.resolver.resolve(props)
        sqs = self.client("sqs")
        for url in p.get("Queues", []):
            sqs.set_queue_attributes(QueueUrl=str(url), Attributes={"Policy": json.dumps(p["PolicyDocument"])})
        return Provisioned(logical_id, "AWS::SQS::QueuePolicy", logical_id, "")

    def _function(self, logical_id: str, props: dict[str, Any]) -> Provisioned:
        # Only the name is resolved here: the runtime resolves the rest, which may point back here.
        name = self._name(logical_id, props, "FunctionName")
        arn = f"arn:aws:lambda:{self.region}:{ACCOUNT_ID}:function:{name}"
        # `!Ref Function.Version` (AutoPublishAlias): the sandbox runs one version of each function.
        return Provisioned(logical_id, SERVERLESS_FUNCTION, name, arn, {"Version": arn + ":1"})

    def _api(self, logical_id: str, props: dict[str, Any]) -> Provisioned:
        api_id = "sbx" + logical_id.lower()[:7]
        stage = str(self.resolver.resolve(props.get("StageName", "Prod")))
        return Provisioned(logical_id, SERVERLESS_API, api_id, "", {"RootResourceId": "root", "Stage": stage})
