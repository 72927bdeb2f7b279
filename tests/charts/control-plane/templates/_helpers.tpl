{{/* The Bitnami PostgreSQL subchart's names and labels, as the real control-plane chart renders them. */}}
{{- define "pg.fullname" -}}
{{ .Release.Name }}-postgresql
{{- end -}}

{{- define "pg.selectorLabels" -}}
app.kubernetes.io/name: postgresql
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: primary
{{- end -}}

{{- define "pg.secretName" -}}
{{- .Values.postgresql.auth.existingSecret | default (include "pg.fullname" .) -}}
{{- end -}}

{{/* The superuser password: the values', else the one already stored (as Bitnami keeps it), else random. */}}
{{- define "pg.password" -}}
{{- if .Values.postgresql.auth.postgresPassword -}}
{{- .Values.postgresql.auth.postgresPassword -}}
{{- else -}}
{{- $existing := lookup "v1" "Secret" .Release.Namespace (include "pg.fullname" .) -}}
{{- if and $existing $existing.data (index $existing.data "postgres-password") -}}
{{- index $existing.data "postgres-password" | b64dec -}}
{{- else -}}
{{- randAlphaNum 16 -}}
{{- end -}}
{{- end -}}
{{- end -}}
