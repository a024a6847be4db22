{{/* Names and labels shared by every object. */}}
{{- define "meshlens.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "meshlens.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains (include "meshlens.name" .) .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "meshlens.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "meshlens.labels" -}}
app.kubernetes.io/name: {{ include "meshlens.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* Selector labels of one component: call with (dict "root" $ "component" "agent"). */}}
{{- define "meshlens.selector" -}}
app.kubernetes.io/name: {{ include "meshlens.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "meshlens.image" -}}
{{- $tag := .image.tag | default .root.Chart.AppVersion -}}
{{- if .image.digest -}}
{{ printf "%s/%s@%s" .root.Values.image.registry .image.repository .image.digest }}
{{- else -}}
{{ printf "%s/%s:%s" .root.Values.image.registry .image.repository $tag }}
{{- end -}}
{{- end -}}

{{- define "meshlens.kafkaSecret" -}}
{{- .Values.kafka.existingSecret | default (printf "%s-kafka" (include "meshlens.fullname" .)) -}}
{{- end -}}
{{- define "meshlens.clickhouseSecret" -}}
{{- .Values.clickhouse.existingSecret | default (printf "%s-clickhouse" (include "meshlens.fullname" .)) -}}
{{- end -}}
{{- define "meshlens.apiSecret" -}}
{{- .Values.api.existingSecret | default (printf "%s-api" (include "meshlens.fullname" .)) -}}
{{- end -}}

{{/* Kafka bootstrap list: the in-chart trial broker or the user's cluster. */}}
{{- define "meshlens.kafkaBrokers" -}}
{{- if .Values.trial.enabled -}}
{{ printf "%s-kafka:9092" (include "meshlens.fullname" .) }}
{{- else -}}
{{- required "kafka.brokers is required (or set trial.enabled=true for an in-chart trial Kafka)" .Values.kafka.brokers | join "," -}}
{{- end -}}
{{- end -}}

{{- define "meshlens.clickhouseUrl" -}}
{{- if .Values.trial.enabled -}}
{{ printf "http://%s-clickhouse:8123" (include "meshlens.fullname" .) }}
{{- else -}}
{{- required "clickhouse.url is required (or set trial.enabled=true for an in-chart trial ClickHouse)" .Values.clickhouse.url -}}
{{- end -}}
{{- end -}}

{{/*
Kafka and ClickHouse connection environment, the same for every component (all of them read
it through @meshlens/schemas kafkaSecurityFromEnv).
*/}}
{{- define "meshlens.connectionEnv" -}}
- name: MESHLENS_KAFKA_BROKERS
  value: {{ include "meshlens.kafkaBrokers" . | quote }}
{{- if and (not .Values.trial.enabled) .Values.kafka.tls.enabled }}
- name: MESHLENS_KAFKA_TLS
  value: "1"
{{- if .Values.kafka.tls.caSecret }}
# PEM text, not a path: NODE_EXTRA_CA_CERTS would be ignored by the agent, whose node binary
# has file capabilities and so runs in secure mode.
- name: MESHLENS_KAFKA_TLS_CA
  valueFrom:
    secretKeyRef: { name: {{ .Values.kafka.tls.caSecret }}, key: {{ .Values.kafka.tls.caKey }} }
{{- end }}
{{- end }}
{{- if and (not .Values.trial.enabled) .Values.kafka.sasl.mechanism }}
- name: MESHLENS_KAFKA_SASL_MECHANISM
  value: {{ .Values.kafka.sasl.mechanism | quote }}
- name: MESHLENS_KAFKA_SASL_USERNAME
  valueFrom:
    secretKeyRef: { name: {{ include "meshlens.kafkaSecret" . }}, key: username }
- name: MESHLENS_KAFKA_SASL_PASSWORD
  valueFrom:
    secretKeyRef: { name: {{ include "meshlens.kafkaSecret" . }}, key: password }
{{- end }}
{{- end -}}

{{- define "meshlens.clickhouseEnv" -}}
- name: MESHLENS_CLICKHOUSE_URL
  value: {{ include "meshlens.clickhouseUrl" . | quote }}
- name: MESHLENS_CLICKHOUSE_DATABASE
  value: {{ .Values.clickhouse.database | quote }}
- name: MESHLENS_CLICKHOUSE_USER
  valueFrom:
    secretKeyRef: { name: {{ include "meshlens.clickhouseSecret" . }}, key: username }
- name: MESHLENS_CLICKHOUSE_PASSWORD
  valueFrom:
    secretKeyRef: { name: {{ include "meshlens.clickhouseSecret" . }}, key: password }
{{- end -}}

{{/* Container security context of the node services: nothing but their own uid. */}}
{{- define "meshlens.restrictedContainer" -}}
runAsNonRoot: true
runAsUser: {{ .Values.image.uid }}
runAsGroup: {{ .Values.image.uid }}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
privileged: false
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* A probe that runs inside the container, for servers that listen on 127.0.0.1 only. */}}
{{- define "meshlens.localHealthProbe" -}}
exec:
  command:
    - node
    - -e
    - "fetch('http://127.0.0.1:{{ .port }}/healthz').then(r => process.exit(r.ok ? 0 : 1), () => process.exit(1))"
{{- end -}}
