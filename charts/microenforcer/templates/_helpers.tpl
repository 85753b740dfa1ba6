{{/*
Labels of every object. The three Helm-only ones are left out of the kustomize base that
charts/generate-manifests.ts renders from this chart.
*/}}
{{- define "microenforcer.labels" -}}
app.kubernetes.io/name: microenforcer-injector
{{ include "microenforcer.helmLabels" . }}
{{- end }}

{{- define "microenforcer.helmLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* What selects the injector's pods: fixed, as a Deployment's selector is immutable. */}}
{{- define "microenforcer.selectorLabels" -}}
app.kubernetes.io/name: microenforcer-injector
{{- end }}

{{- define "microenforcer.image" -}}
{{- $tag := .Values.image.tag | default .Chart.AppVersion -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ $tag }}
{{- end -}}
{{- end }}

{{/* A list of strings in flow style, as people write it: ["a", "b"]. */}}
{{- define "microenforcer.flowList" -}}
[{{ range $i, $v := . }}{{ if $i }}, {{ end }}{{ toJson $v }}{{ end }}]
{{- end }}

{{- define "microenforcer.certManager" -}}
{{- if eq .Values.certificates.mode "certManager" }}true{{ end -}}
{{- end }}

{{/* The injector's flags. */}}
{{- define "microenforcer.injectorArgs" -}}
{{- $args := list "webhook" -}}
{{- if include "microenforcer.certManager" . -}}
{{- $args = concat $args (list "--cert-dir" "/etc/microenforcer/tls") -}}
{{- else -}}
{{- $args = append $args "--self-signed" -}}
{{- end -}}
{{- $args = concat $args (list "--port" "8443" "--shutdown-delay" "5") -}}
{{- if eq .Values.webhook.failurePolicy "Fail" -}}
{{- $args = append $args "--fail-closed" -}}
{{- end -}}
{{- with .Values.sidecar.resources -}}
{{- $args = concat $args (list "--sidecar-cpu-request" .requests.cpu "--sidecar-memory-request" .requests.memory "--sidecar-cpu" .limits.cpu "--sidecar-memory" .limits.memory) -}}
{{- end -}}
{{- if .Values.sidecar.allowPtrace -}}
{{- $args = append $args "--allow-ptrace" -}}
{{- end -}}
{{- with .Values.workload -}}
{{- range $flag, $value := dict "--cluster-name" .clusterName "--cloud-provider" .cloud.provider "--cloud-platform" .cloud.platform "--cloud-region" .cloud.region "--cloud-account-id" .cloud.accountId -}}
{{- if $value -}}
{{- $args = concat $args (list $flag $value) -}}
{{- end -}}
{{- end -}}
{{- with .podLabels -}}
{{- $args = concat $args (list "--pod-labels" (join "," .)) -}}
{{- end -}}
{{- end -}}
{{- with .Values.sidecar.runtimeDefaultCapabilities -}}
{{- $args = concat $args (list "--runtime-default-capabilities" (join "," .)) -}}
{{- end -}}
{{- include "microenforcer.flowList" (concat $args .Values.injector.extraArgs) -}}
{{- end }}

{{/* Where the sidecars send records: the relay when it adds credentials, else the endpoint. */}}
{{- define "microenforcer.relay" -}}
{{- if and .Values.otlp.endpoint .Values.otlp.headers }}true{{ end -}}
{{- end }}

{{/*
The namespaceSelector of one webhook entry: its own expression on the injection label, the
excluded namespaces (always the release's), then the admin's extra expressions.
*/}}
{{- define "microenforcer.namespaceSelector" -}}
{{- $root := index . 0 -}}
{{- $excluded := concat $root.Values.webhook.excludedNamespaces (list $root.Release.Namespace) | uniq -}}
matchExpressions:
  - key: microenforcer.dev/injection
    operator: {{ index . 1 }}
    values: {{ include "microenforcer.flowList" (index . 2) }}
  - key: kubernetes.io/metadata.name
    operator: NotIn
    values: {{ include "microenforcer.flowList" $excluded }}
{{- with $root.Values.webhook.namespaceSelector.matchExpressions }}
{{ toYaml . | indent 2 }}
{{- end }}
{{- end }}

{{/* The webhook entries share everything but their name and selectors. */}}
{{- define "microenforcer.webhookCommon" -}}
admissionReviewVersions: ["v1"]
sideEffects: None
timeoutSeconds: {{ .Values.webhook.timeoutSeconds }}
failurePolicy: {{ .Values.webhook.failurePolicy }}
reinvocationPolicy: IfNeeded
clientConfig:
  service:
    name: microenforcer-injector
    namespace: {{ .Release.Namespace }}
    path: /mutate
    port: 443
rules:
  - apiGroups: [""]
    apiVersions: ["v1"]
    operations: ["CREATE"]
    resources: ["pods"]
    scope: Namespaced
{{- end }}
