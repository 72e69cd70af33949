{{/*
The chart name, truncated to 63 characters (Kubernetes names are DNS labels).
*/}}
{{- define "cmp-waldur-adapter.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The full name of the release's resources: "<release>-<chart>", or the release name when it already
contains the chart name; truncated to 63 characters.
*/}}
{{- define "cmp-waldur-adapter.fullname" -}}
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

{{/*
Chart name and version, for the helm.sh/chart label.
*/}}
{{- define "cmp-waldur-adapter.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Common labels of every resource.
*/}}
{{- define "cmp-waldur-adapter.labels" -}}
helm.sh/chart: {{ include "cmp-waldur-adapter.chart" . }}
{{ include "cmp-waldur-adapter.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: cmp-waldur-adapter
{{- end }}

{{/*
Selector labels. The Deployment, Service and PodDisruptionBudget add app.kubernetes.io/component: server,
so the migration Job's pod (component: migration) never receives traffic.
*/}}
{{- define "cmp-waldur-adapter.selectorLabels" -}}
app.kubernetes.io/name: {{ include "cmp-waldur-adapter.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
The service account the adapter pods run as.
*/}}
{{- define "cmp-waldur-adapter.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "cmp-waldur-adapter.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The container image: repository@digest, or repository:tag (the tag defaults to the chart's appVersion).
*/}}
{{- define "cmp-waldur-adapter.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag | toString) }}
{{- end }}
{{- end }}

{{/*
The database provider in lower case: "sqlite" or "postgres" (the adapter binds it case-insensitively).
*/}}
{{- define "cmp-waldur-adapter.databaseProvider" -}}
{{- default "Sqlite" .Values.config.Database.Provider | toString | lower }}
{{- end }}

{{/*
The name of the Secret holding the adapter's secrets: existingSecret, or the chart's own.
*/}}
{{- define "cmp-waldur-adapter.secretName" -}}
{{- default (include "cmp-waldur-adapter.fullname" .) .Values.existingSecret }}
{{- end }}

{{/*
Flattens a configuration tree into environment variables named the way .NET configuration reads them:
nested keys and list indices joined by "__" (Waldur__BaseUrl, Offerings__0__Uuid). Empty strings and nulls
are skipped, so the adapter's own defaults apply. Call with (dict "env" $dict "prefix" "Section" "value" $tree);
the variables are added to $dict.
*/}}
{{- define "cmp-waldur-adapter.flatten" -}}
{{- $env := .env }}
{{- $prefix := .prefix }}
{{- if kindIs "map" .value }}
{{- range $key, $child := .value }}
{{- include "cmp-waldur-adapter.flatten" (dict "env" $env "prefix" (printf "%s__%s" $prefix $key) "value" $child) }}
{{- end }}
{{- else if kindIs "slice" .value }}
{{- range $index, $child := .value }}
{{- include "cmp-waldur-adapter.flatten" (dict "env" $env "prefix" (printf "%s__%d" $prefix $index) "value" $child) }}
{{- end }}
{{- else if not (kindIs "invalid" .value) }}
{{- $text := toString .value }}
{{- /* Helm reads every number in a values file as a float64, printed 52428800 as 5.24288e+07, which no option binds: whole ones become integers. */}}
{{- if and (kindIs "float64" .value) (eq (float64 (int64 .value)) .value) }}
{{- $text = toString (int64 .value) }}
{{- end }}
{{- if ne $text "" }}
{{- $_ := set $env $prefix $text }}
{{- end }}
{{- end }}
{{- end }}

{{/*
The ConfigMap's data: every non-empty value under `config` as Section__Key, after three chart defaults that
`config` may override: the SQLite file on the data volume, the catalogue folder when a ConfigMap replaces it,
and, behind this chart's Ingress, trusting X-Forwarded-For (else every visitor of a buyer's site would count as
the ingress's one address in the widget's and try page's per-address limits). Shared by the ConfigMap, the
migration Job's copy and the pods' checksum annotation.
*/}}
{{- define "cmp-waldur-adapter.configData" -}}
{{- $env := dict }}
{{- if eq (include "cmp-waldur-adapter.databaseProvider" .) "sqlite" }}
{{- $_ := set $env "Database__ConnectionString" (printf "Data Source=%s/cmp-adapter.db" (trimSuffix "/" .Values.persistence.mountPath)) }}
{{- end }}
{{- if .Values.catalogue.configMap }}
{{- $_ := set $env "Catalogue__Directory" .Values.catalogue.mountPath }}
{{- end }}
{{- if .Values.ingress.enabled }}
{{- $_ := set $env "Web__TrustForwardedHeaders" "true" }}
{{- end }}
{{- if .Values.metricsPort }}
{{- $_ := set $env "Metrics__Port" (toString .Values.metricsPort) }}
{{- end }}
{{- range $section, $tree := .Values.config }}
{{- include "cmp-waldur-adapter.flatten" (dict "env" $env "prefix" $section "value" $tree) }}
{{- end }}
{{- $lines := list }}
{{- range $name, $value := $env }}
{{- $lines = append $lines (printf "%s: %s" $name (quote $value)) }}
{{- end }}
{{- join "\n" $lines }}
{{- end }}

{{/*
The Secret's data (base64): every non-empty value under `secrets` as Section__Key. Shared by the Secret, the
migration Job's copy and the pods' checksum annotation.
*/}}
{{- define "cmp-waldur-adapter.secretData" -}}
{{- $env := dict }}
{{- range $section, $tree := .Values.secrets }}
{{- include "cmp-waldur-adapter.flatten" (dict "env" $env "prefix" $section "value" $tree) }}
{{- end }}
{{- $lines := list }}
{{- range $name, $value := $env }}
{{- $lines = append $lines (printf "%s: %s" $name (b64enc $value | quote)) }}
{{- end }}
{{- join "\n" $lines }}
{{- end }}

{{/*
"true" when the adapter takes the client address from X-Forwarded-For: config.Web.TrustForwardedHeaders when set
(true or false, as a boolean or a string), else the chart's default, on behind its own Ingress.
*/}}
{{- define "cmp-waldur-adapter.trustForwardedHeaders" -}}
{{- $setting := .Values.config.Web.TrustForwardedHeaders }}
{{- if or (kindIs "invalid" $setting) (eq (toString $setting) "") }}
{{- ternary "true" "false" (eq (toString .Values.ingress.enabled) "true") }}
{{- else }}
{{- ternary "true" "false" (eq (lower (toString $setting)) "true") }}
{{- end }}
{{- end }}

{{/*
Refuses settings that cannot work, before anything reaches the cluster.
*/}}
{{- define "cmp-waldur-adapter.validate" -}}
{{- $provider := include "cmp-waldur-adapter.databaseProvider" . }}
{{- if not (has $provider (list "sqlite" "postgres")) }}
{{- fail (printf "config.Database.Provider must be Sqlite or Postgres, not %q." (toString .Values.config.Database.Provider)) }}
{{- end }}
{{- if eq $provider "sqlite" }}
{{- if gt (int .Values.replicaCount) 1 }}
{{- fail "replicaCount > 1 needs config.Database.Provider=Postgres: SQLite is single-replica only (one process owns the file, and Quartz jobs run clustered only on PostgreSQL)." }}
{{- end }}
{{- if .Values.autoscaling.enabled }}
{{- fail "autoscaling.enabled needs config.Database.Provider=Postgres: SQLite is single-replica only." }}
{{- end }}
{{- else }}
{{- if not (or .Values.existingSecret .Values.secrets.Database.ConnectionString) }}
{{- fail "config.Database.Provider=Postgres needs secrets.Database.ConnectionString (or existingSecret with a Database__ConnectionString key)." }}
{{- end }}
{{- /* The key ring lives in the shared database: without a key-encryption key a copy of it decrypts every tenant's credentials. */}}
{{- if not (or .Values.existingSecret .Values.secrets.DataProtection.KeyEncryptionKey (eq (lower (toString .Values.config.DataProtection.AllowUnencryptedKeyRing)) "true")) }}
{{- fail "config.Database.Provider=Postgres needs secrets.DataProtection.KeyEncryptionKey (or existingSecret with a DataProtection__KeyEncryptionKey key): the key that encrypts the Data Protection key ring stored in the database. Generate one with: openssl rand -base64 32. Set config.DataProtection.AllowUnencryptedKeyRing=true to store the key ring unencrypted." }}
{{- end }}
{{- end }}
{{- with .Values.secrets.DataProtection.KeyEncryptionKey }}
{{- if ne (len (b64dec (toString .))) 32 }}
{{- fail "secrets.DataProtection.KeyEncryptionKey must be base64 of exactly 32 bytes (openssl rand -base64 32)." }}
{{- end }}
{{- end }}
{{- if not .Values.config.Waldur.BaseUrl }}
{{- fail "config.Waldur.BaseUrl is required (Waldur's address without /api, e.g. https://waldur.example.org/)." }}
{{- end }}
{{- if not (or .Values.existingSecret .Values.secrets.Waldur.Token) }}
{{- fail "secrets.Waldur.Token is required (or existingSecret with a Waldur__Token key)." }}
{{- end }}
{{- if not .Values.config.Web.PublicBaseUrl }}
{{- fail "config.Web.PublicBaseUrl is required: the adapter's public address as buyers reach it (e.g. https://cmp-adapter.example.org/), used in the console links of Waldur's reports, one-time key links and try-page links; empty, they would point to http://localhost:5000/." }}
{{- end }}
{{- if not (regexMatch "^https?://" (toString .Values.config.Web.PublicBaseUrl)) }}
{{- fail (printf "config.Web.PublicBaseUrl must be an absolute http(s) address such as https://cmp-adapter.example.org/, not %q." (toString .Values.config.Web.PublicBaseUrl)) }}
{{- end }}
{{- /* X-Forwarded-For believed from any peer lets every pod that reaches the Service pick its own client address. */}}
{{- if eq (include "cmp-waldur-adapter.trustForwardedHeaders" .) "true" }}
{{- if not .Values.config.Web.ForwardedProxyNetworks }}
{{- fail "config.Web.ForwardedProxyNetworks is required when the adapter trusts X-Forwarded-For (ingress.enabled, or config.Web.TrustForwardedHeaders=true): list the ingress controller's pod network or addresses in CIDR, e.g. [10.244.0.0/16] or [10.244.1.17/32]. Without it any pod that reaches the Service could name its own client address and escape the try page's and widget's per-address limits. Set config.Web.TrustForwardedHeaders=false to trust no proxy." }}
{{- end }}
{{- range .Values.config.Web.ForwardedProxyNetworks }}
{{- if not (regexMatch "^[0-9A-Fa-f:.]+/[0-9]{1,3}$" (toString .)) }}
{{- fail (printf "config.Web.ForwardedProxyNetworks holds %q, which is not a network in CIDR notation (10.244.0.0/16; a single address is 10.244.1.17/32)." (toString .)) }}
{{- end }}
{{- end }}
{{- end }}
{{- $shutdown := include "cmp-waldur-adapter.shutdownTimeoutSeconds" . | int }}
{{- $preStop := int (default 0 .Values.preStopSleepSeconds) }}
{{- if le (int .Values.terminationGracePeriodSeconds) (add $shutdown $preStop) }}
{{- fail (printf "terminationGracePeriodSeconds (%d) must be longer than config.Hosting.ShutdownTimeout (%d s) plus preStopSleepSeconds (%d s): Kubernetes would kill the adapter while it still finishes in-flight requests." (int .Values.terminationGracePeriodSeconds) $shutdown $preStop) }}
{{- end }}
{{- end }}

{{/*
How long the adapter waits for in-flight requests when stopped, in seconds: config.Hosting.ShutdownTimeout (hh:mm:ss),
or the adapter's own default of Hosting:ShutdownTimeout when it is empty (ChartTests checks the two agree).
*/}}
{{- define "cmp-waldur-adapter.shutdownTimeoutSeconds" -}}
{{- $value := toString (default "" (dig "Hosting" "ShutdownTimeout" "" .Values.config)) }}
{{- if not $value }}135
{{- else if regexMatch "^[0-9]{1,2}:[0-5][0-9]:[0-5][0-9]$" $value }}
{{- $parts := splitList ":" $value }}
{{- add (mul (atoi (index $parts 0)) 3600) (mul (atoi (index $parts 1)) 60) (atoi (index $parts 2)) }}
{{- else }}
{{- fail (printf "config.Hosting.ShutdownTimeout must be hh:mm:ss (e.g. 00:02:15), not %q." $value) }}
{{- end }}
{{- end }}

{{/*
The pods' volumes, shared by the Deployment and the migration Job: /tmp, the SQLite data volume, the
catalogue ConfigMap and extraVolumes.
*/}}
{{- define "cmp-waldur-adapter.volumes" -}}
- name: tmp
  emptyDir: {}
{{- if eq (include "cmp-waldur-adapter.databaseProvider" .) "sqlite" }}
- name: data
  {{- if .Values.persistence.enabled }}
  persistentVolumeClaim:
    claimName: {{ default (printf "%s-data" (include "cmp-waldur-adapter.fullname" .)) .Values.persistence.existingClaim }}
  {{- else }}
  emptyDir: {}
  {{- end }}
{{- end }}
{{- if .Values.catalogue.configMap }}
- name: catalogue
  configMap:
    name: {{ .Values.catalogue.configMap }}
    {{- with .Values.catalogue.items }}
    items:
      {{- toYaml . | nindent 6 }}
    {{- end }}
{{- end }}
{{- with .Values.extraVolumes }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
The container's volume mounts, matching cmp-waldur-adapter.volumes.
*/}}
{{- define "cmp-waldur-adapter.volumeMounts" -}}
- name: tmp
  mountPath: /tmp
{{- if eq (include "cmp-waldur-adapter.databaseProvider" .) "sqlite" }}
- name: data
  mountPath: {{ .Values.persistence.mountPath }}
{{- end }}
{{- if .Values.catalogue.configMap }}
- name: catalogue
  mountPath: {{ .Values.catalogue.mountPath }}
  readOnly: true
{{- end }}
{{- with .Values.extraVolumeMounts }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
The container's environment sources: the ConfigMap, then the Secret (which wins), then extraEnvFrom.
Call with (dict "root" $ "configMap" NAME "secret" NAME).
*/}}
{{- define "cmp-waldur-adapter.envFrom" -}}
- configMapRef:
    name: {{ .configMap }}
- secretRef:
    name: {{ .secret }}
{{- with .root.Values.extraEnvFrom }}
{{ toYaml . }}
{{- end }}
{{- end }}
