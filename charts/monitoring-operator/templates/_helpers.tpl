{{/* Chart name (nameOverride). */}}
{{- define "monitoring-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name of the objects: fullnameOverride, else <release>-<name> (just <release> when it
already contains the name). Truncated to 63 characters (DNS label).
*/}}
{{- define "monitoring-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* name-version, for the helm.sh/chart label. */}}
{{- define "monitoring-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object. */}}
{{- define "monitoring-operator.labels" -}}
helm.sh/chart: {{ include "monitoring-operator.chart" . }}
{{ include "monitoring-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: monitoring-operator
{{- end }}

{{/* Labels selecting the operator's pods (immutable in the Deployment selector). */}}
{{- define "monitoring-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "monitoring-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The operator's ServiceAccount name. */}}
{{- define "monitoring-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "monitoring-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The operator image reference, also the discovery sidecar's (DISCOVERY_IMAGE):
repository@digest when a digest is set, else repository:tag (tag default: appVersion).
*/}}
{{- define "monitoring-operator.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* Name of the leader-election Lease. */}}
{{- define "monitoring-operator.leaseName" -}}
{{- default (include "monitoring-operator.fullname" .) .Values.leaderElection.leaseName }}
{{- end }}

{{/* A map as `k=v,k2=v2`, sorted (the operator's repeatable key=value flags). */}}
{{- define "monitoring-operator.keyValues" -}}
{{- $out := list -}}
{{- range $k, $v := . -}}
{{- $out = append $out (printf "%s=%s" $k $v) -}}
{{- end -}}
{{- join "," $out -}}
{{- end -}}
