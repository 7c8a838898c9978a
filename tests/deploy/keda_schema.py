"""JSON Schemas of the KEDA resources deploy/kubernetes uses (keda.sh/v1alpha1:
ScaledObject, ScaledJob, TriggerAuthentication), written for these tests from KEDA
2.x's CRD reference (keda-docs content/docs/2.x: scaledobject-spec, scaledjob-spec,
authentication, scalers/metrics-api). kubernetes-validate has no schemas for CRDs.

Written, not vendored: a subset of the CRDs' fields, each level closed
(additionalProperties: false) so a misspelt field fails, and the metrics-api trigger's
metadata checked against the scaler's documented keys. A field KEDA has and these
schemas lack fails too: add it here when a manifest needs it.
"""

from __future__ import annotations

from typing import Any

STRING = {"type": "string"}
INT = {"type": "integer"}
NAME_REF = {"type": "object", "required": ["name"], "additionalProperties": False,
            "properties": {"name": STRING, "kind": STRING}}  # fmt: skip
METADATA = {
    "type": "object", "required": ["name"],
    "properties": {"name": STRING, "namespace": STRING, "labels": {"type": "object"},
                   "annotations": {"type": "object"}},
    "additionalProperties": False,
}  # fmt: skip

METRICS_API = {
    "type": "object",
    "required": ["url", "valueLocation", "targetValue"],
    "additionalProperties": False,
    "properties": {
        "url": {"type": "string", "pattern": "^https?://"},
        "format": {"enum": ["json", "xml", "yaml", "prometheus"]},
        "valueLocation": STRING,
        "targetValue": {"type": "string", "pattern": r"^[0-9]+(\.[0-9]+)?$"},
        "activationTargetValue": {"type": "string", "pattern": r"^[0-9]+(\.[0-9]+)?$"},
        "authMode": {"enum": ["apiKey", "basic", "tls", "bearer"]},
        "method": {"enum": ["GET", "POST"]},
        "unsafeSsl": {"enum": ["true", "false"]},
        "timeout": STRING,
        "aggregateFromKubeServiceEndpoints": {"enum": ["true", "false"]},
        "aggregationType": {"enum": ["average", "sum", "max", "min"]},
    },
}
TRIGGER = {
    "type": "object",
    "required": ["type", "metadata"],
    "additionalProperties": False,
    "properties": {
        "type": {"const": "metrics-api"},  # the only scaler Sluice documents
        "name": STRING,
        "metricType": {"enum": ["AverageValue", "Value", "Utilization"]},
        "useCachedMetrics": {"type": "boolean"},
        "metadata": METRICS_API,
        "authenticationRef": NAME_REF,
    },
}
TRIGGERS = {"type": "array", "minItems": 1, "items": TRIGGER}
HPA_BEHAVIOR_RULES = {
    "type": "object", "additionalProperties": False,
    "properties": {
        "stabilizationWindowSeconds": {"type": "integer", "minimum": 0, "maximum": 3600},
        "selectPolicy": {"enum": ["Max", "Min", "Disabled"]},
        "policies": {"type": "array", "items": {
            "type": "object", "required": ["type", "value", "periodSeconds"],
            "additionalProperties": False,
            "properties": {"type": {"enum": ["Pods", "Percent"]},
                           "value": {"type": "integer", "minimum": 1},
                           "periodSeconds": {"type": "integer", "minimum": 1, "maximum": 1800}},
        }},
    },
}  # fmt: skip


def _resource(kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "additionalProperties": False,
        "properties": {
            "apiVersion": {"const": "keda.sh/v1alpha1"},
            "kind": {"const": kind},
            "metadata": METADATA,
            "spec": spec,
        },
    }


SCHEMAS: dict[str, dict[str, Any]] = {
    "ScaledObject": _resource(
        "ScaledObject",
        {
            "type": "object",
            "required": ["scaleTargetRef", "triggers"],
            "additionalProperties": False,
            "properties": {
                "scaleTargetRef": {
                    "type": "object",
                    "required": ["name"],
                    "additionalProperties": False,
                    "properties": {
                        "name": STRING,
                        "kind": STRING,
                        "apiVersion": STRING,
                        "envSourceContainerName": STRING,
                    },
                },
                "pollingInterval": INT,
                "cooldownPeriod": INT,
                "initialCooldownPeriod": INT,
                "idleReplicaCount": INT,
                "minReplicaCount": {"type": "integer", "minimum": 0},
                "maxReplicaCount": {"type": "integer", "minimum": 1},
                "fallback": {
                    "type": "object",
                    "required": ["failureThreshold", "replicas"],
                    "additionalProperties": False,
                    "properties": {"failureThreshold": INT, "replicas": INT},
                },
                "advanced": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "restoreToOriginalReplicaCount": {"type": "boolean"},
                        "horizontalPodAutoscalerConfig": {
                            "type": "object",
                            "additionalProperties": False,
                            "properties": {
                                "name": STRING,
                                "behavior": {
                                    "type": "object",
                                    "additionalProperties": False,
                                    "properties": {
                                        "scaleDown": HPA_BEHAVIOR_RULES,
                                        "scaleUp": HPA_BEHAVIOR_RULES,
                                    },
                                },
                            },
                        },
                    },
                },
                "triggers": TRIGGERS,
            },
        },
    ),
    "ScaledJob": _resource(
        "ScaledJob",
        {
            "type": "object",
            "required": ["jobTargetRef", "triggers"],
            "additionalProperties": False,
            "properties": {
                # A batch/v1 JobSpec: the test validates it with kubernetes-validate as a Job.
                "jobTargetRef": {"type": "object", "required": ["template"]},
                "pollingInterval": INT,
                "minReplicaCount": {"type": "integer", "minimum": 0},
                "maxReplicaCount": {"type": "integer", "minimum": 1},
                "successfulJobsHistoryLimit": INT,
                "failedJobsHistoryLimit": INT,
                "rollout": {"type": "object"},
                "scalingStrategy": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "strategy": {"enum": ["default", "custom", "accurate", "eager"]},
                        "customScalingQueueLengthDeduction": INT,
                        "customScalingRunningJobPercentage": STRING,
                        "pendingPodConditions": {"type": "array", "items": STRING},
                        "multipleScalersCalculation": {"enum": ["max", "min", "avg", "sum"]},
                    },
                },
                "triggers": TRIGGERS,
            },
        },
    ),
    "TriggerAuthentication": _resource(
        "TriggerAuthentication",
        {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "secretTargetRef": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["parameter", "name", "key"],
                        "additionalProperties": False,
                        "properties": {
                            "parameter": {
                                "enum": [
                                    "token",
                                    "apiKey",
                                    "username",
                                    "password",
                                    "ca",
                                    "cert",
                                    "key",
                                ]
                            },
                            "name": STRING,
                            "key": STRING,
                        },
                    },
                },
            },
        },
    ),
}
