{{/* Chart name, truncated to the 63 characters a label value allows. */}}
{{- define "llmref.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: release-chart, or the release alone when it already contains the chart name. */}}
{{- define "llmref.fullname" -}}
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

{{- define "llmref.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Selector labels of the server pods (the NetworkPolicy, Services and PDB select by these). */}}
{{- define "llmref.selectorLabels" -}}
app.kubernetes.io/name: {{ include "llmref.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: server
{{- end }}

{{- define "llmref.labels" -}}
helm.sh/chart: {{ include "llmref.chart" . }}
{{ include "llmref.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: ai-llm-reference-app
{{- end }}

{{/* Labels of objects that are not the server pods (no component: server). */}}
{{- define "llmref.commonLabels" -}}
helm.sh/chart: {{ include "llmref.chart" . }}
app.kubernetes.io/name: {{ include "llmref.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: ai-llm-reference-app
{{- end }}

{{- define "llmref.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "llmref.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* repository@digest when a digest is given, else repository:tag (default: appVersion). */}}
{{- define "llmref.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{- define "llmref.accelerator" -}}
{{- if .Values.gpu.enabled }}gpu{{ else }}cpu{{ end }}
{{- end }}

{{/* In-container paths; the image (Dockerfile.cuda) and k8s/ use the same. */}}
{{- define "llmref.configDir" -}}/etc/llmref{{- end }}
{{- define "llmref.secretDir" -}}/etc/llmref/secrets{{- end }}
{{- define "llmref.modelDir" -}}/models{{- end }}

{{/* The server's config.yaml: the operator's config tree plus the keys the chart owns. */}}
{{- define "llmref.serverConfig" -}}
{{- $cfg := deepCopy .Values.config }}
{{- $server := merge (dict "host" "0.0.0.0" "port" .Values.ports.http "admin-port" .Values.ports.admin) (default dict $cfg.server) }}
{{- $model := merge (dict "path" (printf "%s/%s" (include "llmref.modelDir" .) .Values.model.file)) (default dict $cfg.model) }}
{{- if .Values.gpu.enabled }}
{{- /* A GPU pod whose model is not entirely on the GPU is not ready: no silent CPU fallback. */}}
{{- if not (hasKey $model "require-gpu") }}
{{- $_ := set $model "require-gpu" true }}
{{- end }}
{{- else }}
{{- $_ := set $model "gpu-layers" 0 }}
{{- $_ := set $model "require-gpu" false }}
{{- end }}
{{- $_ := set $cfg "server" $server }}
{{- $_ := set $cfg "model" $model }}
{{- if .Values.auth.enabled }}
{{- $_ := set $cfg "auth" (dict "api-keys-file" (printf "%s/%s" (include "llmref.secretDir" .) .Values.auth.secretKey)) }}
{{- end }}
{{- toYaml $cfg }}
{{- end }}
