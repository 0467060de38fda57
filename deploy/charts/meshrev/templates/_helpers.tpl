{{- define "meshrev.namespace" -}}
{{- default .Release.Namespace .Values.namespace -}}
{{- end -}}

{{- define "meshrev.labels" -}}
app.kubernetes.io/name: meshrev
app.kubernetes.io/part-of: meshrev
{{- end -}}

{{- define "meshrev.subject" -}}
- kind: ServiceAccount
  name: meshrev
  namespace: {{ include "meshrev.namespace" . }}
{{- end -}}
