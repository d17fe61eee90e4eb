{{- define "llm-gateway.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "llm-gateway.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else if contains (include "llm-gateway.name" .) .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name (include "llm-gateway.name" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "llm-gateway.selectorLabels" -}}
app.kubernetes.io/name: {{ include "llm-gateway.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "llm-gateway.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "llm-gateway.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "llm-gateway.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "llm-gateway.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "llm-gateway.policiesConfigMap" -}}
{{- .Values.policies.existingConfigMap | default (printf "%s-policies" (include "llm-gateway.fullname" .)) }}
{{- end }}

{{/* Whether pods get environment variables from a Secret: an existing one, or one made from secret.env. */}}
{{- define "llm-gateway.secret" -}}
{{- if or .Values.existingSecret (and .Values.secret.create .Values.secret.env) }}true{{ end }}
{{- end }}

{{- define "llm-gateway.secretName" -}}
{{- .Values.existingSecret | default (include "llm-gateway.fullname" .) }}
{{- end }}

{{/* Whether pods share state through Redis. */}}
{{- define "llm-gateway.redis" -}}
{{- if or .Values.redis.url .Values.redis.existingSecret }}true{{ end }}
{{- end }}

{{- define "llm-gateway.redisSecretName" -}}
{{- .Values.redis.existingSecret | default (printf "%s-redis" (include "llm-gateway.fullname" .)) }}
{{- end }}

{{- define "llm-gateway.terminationGracePeriodSeconds" -}}
{{- add .Values.gateway.drainDelaySeconds .Values.gateway.shutdownGraceSeconds .Values.gateway.terminationMarginSeconds }}
{{- end }}

{{/*
The gateway's configuration file: `config` from the values plus the settings the chart owns. REDIS_URL comes
from a Secret (it may hold a password); the options the gateway's Redis client reads go after it.
*/}}
{{- define "llm-gateway.config" -}}
{{- $config := deepCopy (.Values.config | default dict) }}
{{- $owned := dict "server" (list "host" "port" "workers" "drain_delay_seconds" "shutdown_grace_seconds") "state" (list "redis_url" "ready_requires_redis") "policies" (list "dir") }}
{{- range $section, $keys := $owned }}
{{- $given := get $config $section | default dict }}
{{- range $keys }}
{{- if hasKey $given . }}
{{- fail (printf "config.%s.%s is set by the chart: use the chart's own value (see values.yaml)" $section .) }}
{{- end }}
{{- end }}
{{- end }}
{{- $server := get $config "server" | default dict }}
{{- $_ := set $server "host" "0.0.0.0" }}
{{- $_ := set $server "port" (int .Values.gateway.port) }}
{{- $_ := set $server "workers" (int .Values.workers) }}
{{- $_ := set $server "drain_delay_seconds" .Values.gateway.drainDelaySeconds }}
{{- $_ := set $server "shutdown_grace_seconds" .Values.gateway.shutdownGraceSeconds }}
{{- $_ := set $config "server" $server }}
{{- $state := get $config "state" | default dict }}
{{- $url := "" }}
{{- if include "llm-gateway.redis" . }}
{{- $options := list }}
{{- if .Values.redis.cluster }}{{ $options = append $options "cluster=true" }}{{ end }}
{{- if .Values.redis.tls.caSecret }}{{ $options = append $options (printf "ssl_ca_certs=/etc/llm-gateway/redis-tls/%s" .Values.redis.tls.caKey) }}{{ end }}
{{- $url = printf "${REDIS_URL}%s" (ternary (printf "?%s" (join "&" $options)) "" (gt (len $options) 0)) }}
{{- end }}
{{- $_ := set $state "redis_url" $url }}
{{- $_ := set $state "ready_requires_redis" .Values.redis.readyRequiresRedis }}
{{- $_ := set $config "state" $state }}
{{- if .Values.metricsToken.existingSecret }}
{{- $observability := get $config "observability" | default dict }}
{{- $metrics := get $observability "metrics" | default dict }}
{{- if or (hasKey $metrics "token_env") (hasKey $metrics "token_file") }}
{{- fail "config.observability.metrics.token_env/token_file and metricsToken.existingSecret both name the /metrics token: keep one" }}
{{- end }}
{{- $_ := set $metrics "token_env" "GATEWAY_METRICS_TOKEN" }}
{{- $_ := set $observability "metrics" $metrics }}
{{- $_ := set $config "observability" $observability }}
{{- end }}
{{- $policies := get $config "policies" | default dict }}
{{- $_ := set $policies "dir" "/etc/llm-gateway/policies" }}
{{- $_ := set $config "policies" $policies }}
{{- toYaml $config }}
{{- end }}
