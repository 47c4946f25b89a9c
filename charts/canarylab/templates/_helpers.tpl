{{/*
The shared names, from files/contract.yaml (rendered by `canarylab contract export`).
*/}}
{{- define "canarylab.contract" -}}
{{- $raw := .Files.Get "files/contract.yaml" -}}
{{- if not $raw -}}
{{- fail "files/contract.yaml is missing: run `canarylab contract export`" -}}
{{- end -}}
{{- $raw -}}
{{- end }}

{{/*
Name of the chart (or nameOverride).
*/}}
{{- define "canarylab.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Prefix of every object name: the release name, plus the chart name unless the
release name already contains it. Names live in the release namespace, so two
releases in two namespaces never clash.
*/}}
{{- define "canarylab.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "canarylab.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels of every object.
*/}}
{{- define "canarylab.labels" -}}
helm.sh/chart: {{ include "canarylab.chart" . }}
app.kubernetes.io/name: {{ include "canarylab.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: canarylab
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Selector labels of one component (app or model-service), both variants.
Context: dict "root" $ "component" "app"
*/}}
{{- define "canarylab.selectorLabels" -}}
app.kubernetes.io/name: {{ include "canarylab.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/*
Name of a component's Service (and Istio host): <fullname>-<component>.
Context: dict "root" $ "component" "app"
*/}}
{{- define "canarylab.componentName" -}}
{{- printf "%s-%s" (include "canarylab.fullname" .root) .component }}
{{- end }}

{{/*
In-mesh FQDN of a component's Service.
*/}}
{{- define "canarylab.host" -}}
{{- printf "%s.%s.svc.cluster.local" (include "canarylab.componentName" .) .root.Release.Namespace }}
{{- end }}

{{/*
Values key of a component: app -> app, model-service -> modelService.
*/}}
{{- define "canarylab.valuesKey" -}}
{{- if eq .component "app" }}app{{ else }}modelService{{ end }}
{{- end }}

{{/*
Image reference of a component.
*/}}
{{- define "canarylab.image" -}}
{{- $img := get .root.Values.image (include "canarylab.valuesKey" .) -}}
{{- printf "%s:%s" $img.repository (toString (default .root.Chart.AppVersion .root.Values.image.tag)) }}
{{- end }}

{{/*
Container port of a component, from the contract.
*/}}
{{- define "canarylab.containerPort" -}}
{{- $c := include "canarylab.contract" .root | fromYaml -}}
{{- if eq .component "app" }}{{ $c.ports.app }}{{ else }}{{ $c.ports.model_service }}{{ end }}
{{- end }}

{{/*
Port of the model-service's metrics listener (its own thread, outside the request
pool), from the contract. Container, Service and ServiceMonitor call it "metrics".
*/}}
{{- define "canarylab.metricsPort" -}}
{{- $c := include "canarylab.contract" .root | fromYaml -}}
{{- $c.ports.model_service_metrics }}
{{- end }}

{{/*
Per-variant values of a variant, failing clearly when a contract variant has none.
*/}}
{{- define "canarylab.variantValues" -}}
{{- $v := get .root.Values.variants .variant -}}
{{- if not $v -}}
{{- fail (printf "values: variants.%s is missing (the contract's variants must all be configured)" .variant) -}}
{{- end -}}
{{- toYaml $v -}}
{{- end }}
