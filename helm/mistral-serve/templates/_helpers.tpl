{{/* Names ------------------------------------------------------------------------------- */}}

{{- define "mistral-serve.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "mistral-serve.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else if contains (include "mistral-serve.name" .) .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "mistral-serve.name" .) | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "mistral-serve.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "mistral-serve.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "mistral-serve.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mistral-serve.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "mistral-serve.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "mistral-serve.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "mistral-serve.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag -}}
{{- if .Values.image.digest -}}
{{- printf "%s:%s@%s" .Values.image.repository $tag .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}
{{- end -}}

{{- define "mistral-serve.redisImage" -}}
{{- $i := .Values.redis.image -}}
{{- if $i.digest -}}
{{- printf "%s:%s@%s" $i.repository $i.tag $i.digest -}}
{{- else -}}
{{- printf "%s:%s" $i.repository $i.tag -}}
{{- end -}}
{{- end -}}

{{- define "mistral-serve.adminSecretName" -}}
{{- default (printf "%s-admin" (include "mistral-serve.fullname" .)) .Values.adminToken.existingSecret -}}
{{- end -}}

{{- define "mistral-serve.redisName" -}}
{{- printf "%s-redis" (include "mistral-serve.fullname" .) -}}
{{- end -}}

{{/* The Secret and key holding the bundled Redis password. */}}
{{- define "mistral-serve.redisPasswordSecret" -}}
{{- default (include "mistral-serve.redisName" .) .Values.redis.existingSecret -}}
{{- end -}}

{{/* The Secret and key holding the external Redis URL. */}}
{{- define "mistral-serve.redisUrlSecret" -}}
{{- default (printf "%s-redis-url" (include "mistral-serve.fullname" .)) .Values.redis.external.existingSecret -}}
{{- end -}}

{{/* A Secret value generated once and kept across upgrades (lookup is empty under helm template). */}}
{{- define "mistral-serve.keptSecret" -}}
{{- $existing := lookup "v1" "Secret" .namespace .name -}}
{{- if and $existing (index $existing.data .key) -}}
{{- index $existing.data .key -}}
{{- else -}}
{{- randAlphaNum 40 | b64enc -}}
{{- end -}}
{{- end -}}

{{/* Validation: every misconfiguration the chart can detect fails the install with a message. */}}
{{- define "mistral-serve.validate" -}}
{{- $engine := .Values.serve.engine.deployment -}}
{{- if and .Values.gcsFaultTolerance.enabled (not .Values.gcsFaultTolerance.redisAddress) -}}
{{- fail "gcsFaultTolerance.enabled needs gcsFaultTolerance.redisAddress (an external Redis for the GCS)" -}}
{{- end -}}
{{- if and (not .Values.redis.bundled) (not .Values.redis.external.url) (not .Values.redis.external.existingSecret) -}}
{{- fail "redis.bundled is false: set redis.external.url or redis.external.existingSecret" -}}
{{- end -}}
{{- if and .Values.redis.bundled (or .Values.redis.external.url .Values.redis.external.existingSecret) -}}
{{- fail "set either redis.bundled or redis.external, not both" -}}
{{- end -}}
{{- if lt (int .Values.gpuWorkers.maxReplicas) (int .Values.gpuWorkers.minReplicas) -}}
{{- fail "gpuWorkers.maxReplicas must be at least gpuWorkers.minReplicas" -}}
{{- end -}}
{{- if and .Values.cpuWorkers.enabled (lt (int .Values.cpuWorkers.maxReplicas) (int .Values.cpuWorkers.minReplicas)) -}}
{{- fail "cpuWorkers.maxReplicas must be at least cpuWorkers.minReplicas" -}}
{{- end -}}
{{- if and $engine.autoscaling.enabled (lt (int $engine.autoscaling.maxReplicas) (int $engine.autoscaling.minReplicas)) -}}
{{- fail "serve.engine.deployment.autoscaling.maxReplicas must be at least minReplicas" -}}
{{- end -}}
{{- if gt (float64 $engine.numGpus) (float64 .Values.gpuWorkers.gpusPerWorker) -}}
{{- fail "serve.engine.deployment.numGpus exceeds gpuWorkers.gpusPerWorker: no worker could host an engine replica" -}}
{{- end -}}
{{- if $engine.autoscaling.enabled -}}
{{- $capacity := mulf (float64 .Values.gpuWorkers.maxReplicas) (float64 .Values.gpuWorkers.gpusPerWorker) -}}
{{- $needed := mulf (float64 $engine.autoscaling.minReplicas) (float64 $engine.numGpus) -}}
{{- if gt $needed $capacity -}}
{{- fail "serve.engine.deployment.autoscaling.minReplicas x numGpus exceeds gpuWorkers.maxReplicas x gpusPerWorker" -}}
{{- end -}}
{{- end -}}
{{- $explicit := int .Values.drain.terminationGracePeriodSeconds -}}
{{- if and (gt $explicit 0) (lt $explicit (int (include "mistral-serve.computedGracePeriod" .))) -}}
{{- fail (printf "drain.terminationGracePeriodSeconds (%d) is below preStop + Serve graceful shutdown + margin (%s): in-flight requests would be killed" $explicit (include "mistral-serve.computedGracePeriod" .)) -}}
{{- end -}}
{{- if and .Values.huggingFace.modelCache.enabled (not .Values.huggingFace.modelCache.existingClaim) -}}
{{- fail "huggingFace.modelCache.enabled needs huggingFace.modelCache.existingClaim" -}}
{{- end -}}
{{- if not (has .Values.upgrade.strategy (list "NewCluster" "None" "NewClusterWithIncrementalUpgrade")) -}}
{{- fail "upgrade.strategy must be NewCluster, None or NewClusterWithIncrementalUpgrade" -}}
{{- end -}}
{{- end -}}

{{/* Drain timings ----------------------------------------------------------------------- */}}

{{/* The longest Serve graceful shutdown of any deployment (seconds, integer). */}}
{{- define "mistral-serve.maxGracefulShutdown" -}}
{{- $longest := 0.0 -}}
{{- range $name := list "engine" "gateway" "moderation" -}}
{{- $section := index $.Values.serve $name | default dict -}}
{{- $timeout := float64 (dig "deployment" "gracefulShutdownTimeoutS" 0 $section) -}}
{{- if gt $timeout $longest }}{{ $longest = $timeout }}{{ end -}}
{{- end -}}
{{- ceil $longest | int -}}
{{- end -}}

{{/* How long a worker's preStop hook waits after asking Ray to drain the node. */}}
{{- define "mistral-serve.preStopSeconds" -}}
{{- if gt (int .Values.drain.preStopSeconds) 0 -}}
{{- int .Values.drain.preStopSeconds -}}
{{- else -}}
{{- include "mistral-serve.maxGracefulShutdown" . -}}
{{- end -}}
{{- end -}}

{{/* NOTE: preStop runs first, then SIGTERM; Serve's graceful shutdown may still be running then. */}}
{{- define "mistral-serve.computedGracePeriod" -}}
{{- add (int (include "mistral-serve.preStopSeconds" .)) (int (include "mistral-serve.maxGracefulShutdown" .)) (int .Values.drain.marginSeconds) -}}
{{- end -}}

{{- define "mistral-serve.gracePeriod" -}}
{{- if gt (int .Values.drain.terminationGracePeriodSeconds) 0 -}}
{{- int .Values.drain.terminationGracePeriodSeconds -}}
{{- else -}}
{{- include "mistral-serve.computedGracePeriod" . -}}
{{- end -}}
{{- end -}}

{{/* The deployment config (serve/config.py AppConfig) -------------------------------------- */}}

{{/* camelCase keys to snake_case, recursively; `resources` maps are custom Ray resource names
     and are copied as they are; `autoscaling.enabled: false` drops autoscaling. */}}
{{- define "mistral-serve.snakeKeys" -}}
{{- $out := dict -}}
{{- range $key, $value := . -}}
{{- if eq $key "resources" -}}
{{- $_ := set $out $key $value -}}
{{- else if and (eq $key "autoscaling") (kindIs "map" $value) -}}
{{- if $value.enabled -}}
{{- $_ := set $out $key (include "mistral-serve.snakeKeys" (omit $value "enabled") | fromJson) -}}
{{- end -}}
{{- else if kindIs "map" $value -}}
{{- $_ := set $out (snakecase $key) (include "mistral-serve.snakeKeys" $value | fromJson) -}}
{{- else -}}
{{- $_ := set $out (snakecase $key) $value -}}
{{- end -}}
{{- end -}}
{{- toJson $out -}}
{{- end -}}

{{/* The application's args: the AppConfig as JSON, less what Ray Serve applies in place (the
     deployment sections go to deployments[], Serve's logging settings to logging_config; see
     serve/serve_config.py): a change there keeps the running replicas. */}}
{{- define "mistral-serve.appArgs" -}}
{{- $args := include "mistral-serve.snakeKeys" .Values.serve | fromJson -}}
{{- range $section := list "engine" "gateway" "moderation" -}}
{{- if hasKey $args $section -}}
{{- $_ := unset (index $args $section) "deployment" -}}
{{- end -}}
{{- end -}}
{{- if hasKey $args "logging" -}}
{{- $_ := set $args "logging" (omit (index $args "logging") "encoding" "level" "access_log") -}}
{{- end -}}
{{- if and .Values.moderation.policies (hasKey $args "moderation") (not (index $args "moderation" "policies_dir")) -}}
{{- /* The policies of the ConfigMap replace the packaged ones. */ -}}
{{- $_ := set (index $args "moderation") "policies_dir" "/etc/mistral-serve/policies" -}}
{{- end -}}
{{- toJson $args -}}
{{- end -}}

{{/* Ray Serve's options of one deployment, as serve/config.py DeploymentOptions.serve_options
     derives them: unset numbers from the capacity C = maxOngoingRequests / 2 (queue bound C,
     autoscaling target 0.75 C). Argument: dict "name", "options" (the camelCase deployment
     values) and "defaultMaxOngoing". */}}
{{- define "mistral-serve.deploymentOptions" -}}
{{- $o := .options -}}
{{- $maxOngoing := int .defaultMaxOngoing -}}
{{- if not (kindIs "invalid" $o.maxOngoingRequests) }}{{ $maxOngoing = int $o.maxOngoingRequests }}{{ end -}}
{{- $capacity := max 1 (div $maxOngoing 2) -}}
{{- $queued := $capacity -}}
{{- if not (kindIs "invalid" $o.maxQueuedRequests) }}{{ $queued = int $o.maxQueuedRequests }}{{ end -}}
{{- $actor := dict "num_cpus" $o.numCpus "num_gpus" $o.numGpus -}}
{{- if $o.resources }}{{ $_ := set $actor "resources" $o.resources }}{{ end -}}
{{- $backpressure := dict "status_code" (int $o.backpressure.statusCode) "retry_after_s" $o.backpressure.retryAfterS -}}
{{- $out := dict "name" .name "ray_actor_options" $actor "max_ongoing_requests" $maxOngoing "max_queued_requests" $queued "backpressure_config" $backpressure "graceful_shutdown_timeout_s" $o.gracefulShutdownTimeoutS "health_check_period_s" $o.healthCheckPeriodS -}}
{{- if and $o.autoscaling $o.autoscaling.enabled -}}
{{- $autoscaling := dict -}}
{{- range $key, $value := omit $o.autoscaling "enabled" -}}
{{- if not (kindIs "invalid" $value) }}{{ $_ := set $autoscaling (snakecase $key) $value }}{{ end -}}
{{- end -}}
{{- if not (hasKey $autoscaling "target_ongoing_requests") }}{{ $_ := set $autoscaling "target_ongoing_requests" (mulf 0.75 $capacity) }}{{ end -}}
{{- $_ := set $out "autoscaling_config" $autoscaling -}}
{{- else -}}
{{- $_ := set $out "num_replicas" (int $o.numReplicas) -}}
{{- end -}}
{{- toJson $out -}}
{{- end -}}

{{/* deployments[] of the application (serve/serve_config.py deployment_options). */}}
{{- define "mistral-serve.deployments" -}}
{{- $serve := .Values.serve -}}
{{- $items := list (include "mistral-serve.deploymentOptions" (dict "name" "Gateway" "options" $serve.gateway.deployment "defaultMaxOngoing" 256) | fromJson) -}}
{{- $items = append $items (include "mistral-serve.deploymentOptions" (dict "name" "Engine" "options" $serve.engine.deployment "defaultMaxOngoing" (mul 2 (int $serve.engine.maxBatchSize))) | fromJson) -}}
{{- if $serve.moderation.enabled -}}
{{- $items = append $items (include "mistral-serve.deploymentOptions" (dict "name" "Moderation" "options" $serve.moderation.deployment "defaultMaxOngoing" 64) | fromJson) -}}
{{- end -}}
{{- toJson (dict "items" $items) -}}
{{- end -}}

{{/* Ray Serve's logging_config of the application (serve/config.py LoggingConfig). */}}
{{- define "mistral-serve.loggingConfig" -}}
{{- $logging := .Values.serve.logging | default dict -}}
{{- $access := true -}}
{{- if not (kindIs "invalid" $logging.accessLog) }}{{ $access = $logging.accessLog }}{{ end -}}
{{- toJson (dict "encoding" ($logging.encoding | default "JSON") "log_level" ($logging.level | default "INFO") "enable_access_log" $access) -}}
{{- end -}}

{{/* serveConfigV2: the shape of `mistral-serve ray-config` (serve/serve_config.py). */}}
{{- define "mistral-serve.serveConfig" -}}
{{- $app := dict "name" .Values.serve.name "route_prefix" "/" "import_path" "serve.app:build_app" "args" (include "mistral-serve.appArgs" . | fromJson) "logging_config" (include "mistral-serve.loggingConfig" . | fromJson) "deployments" (include "mistral-serve.deployments" . | fromJson).items -}}
{{- $config := dict "proxy_location" "EveryNode" "http_options" (dict "host" "0.0.0.0" "port" (int .Values.api.port)) "applications" (list $app) -}}
{{- toYaml $config -}}
{{- end -}}

{{/* Ray pods -------------------------------------------------------------------------------- */}}

{{/* Environment of every Ray container: replicas inherit it from the raylet. Secrets come from
     Kubernetes Secrets, never through Ray's (visible) deployment config. */}}
{{- define "mistral-serve.rayEnv" -}}
- name: MISTRAL_SERVE_ADMIN_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ include "mistral-serve.adminSecretName" . }}
      key: token
{{- if .Values.redis.bundled }}
- name: MISTRAL_SERVE_REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "mistral-serve.redisPasswordSecret" . }}
      key: password
- name: MISTRAL_SERVE_REDIS_URL
  value: {{ printf "redis://:$(MISTRAL_SERVE_REDIS_PASSWORD)@%s.%s.svc:6379/0" (include "mistral-serve.redisName" .) .Release.Namespace | quote }}
{{- else }}
- name: MISTRAL_SERVE_REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "mistral-serve.redisUrlSecret" . }}
      key: {{ .Values.redis.external.urlSecretKey }}
{{- end }}
- name: HF_HOME
  value: /home/ray/.cache/huggingface
{{- if .Values.huggingFace.offline }}
- name: HF_HUB_OFFLINE
  value: "1"
{{- end }}
{{- if .Values.huggingFace.tokenSecret }}
- name: HF_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ .Values.huggingFace.tokenSecret }}
      key: token
{{- end }}
- name: RAY_USAGE_STATS_ENABLED
  value: "0"
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "mistral-serve.rayVolumeMounts" -}}
- name: tmp
  mountPath: /tmp
- name: cache
  mountPath: /home/ray/.cache
{{- if .Values.huggingFace.modelCache.enabled }}
- name: model-cache
  mountPath: /home/ray/.cache/huggingface
{{- end }}
- name: policies
  mountPath: /etc/mistral-serve/policies
  readOnly: true
{{- end -}}

{{- define "mistral-serve.rayVolumes" -}}
- name: tmp
  emptyDir: {}
- name: cache
  emptyDir: {}
{{- if .Values.huggingFace.modelCache.enabled }}
- name: model-cache
  persistentVolumeClaim:
    claimName: {{ .Values.huggingFace.modelCache.existingClaim }}
{{- end }}
- name: policies
  configMap:
    name: {{ include "mistral-serve.fullname" . }}-policies
    items:
      - key: README
        path: README
      {{- range $key, $file := include "mistral-serve.policyFiles" . | fromJson }}
      - key: {{ $key }}
        path: {{ $file.path }}
      {{- end }}
{{- end -}}

{{/* moderation.policies as {configMapKey: {path, content}}. */}}
{{- define "mistral-serve.policyFiles" -}}
{{- $files := dict -}}
{{- range $policy, $content := .Values.moderation.policies -}}
{{- range $file, $text := $content -}}
{{- $path := printf "%s/%s" $policy $file -}}
{{- $_ := set $files ($path | replace "/" "__") (dict "path" $path "content" $text) -}}
{{- end -}}
{{- end -}}
{{- toJson $files -}}
{{- end -}}

{{/* Readiness and liveness of a Ray container: the local raylet answers (KubeRay's own check),
     and on workers the node's Serve proxy too. */}}
{{- define "mistral-serve.rayProbes" -}}
{{- $check := "wget -T 2 -q -O- http://localhost:52365/api/local_raylet_healthz | grep success" -}}
{{- if .serving -}}
{{- $check = printf "%s && wget -T 2 -q -O- http://localhost:%d/-/healthz | grep success" $check (int .port) -}}
{{- end -}}
livenessProbe:
  exec:
    command: ["bash", "-c", {{ "wget -T 2 -q -O- http://localhost:52365/api/local_raylet_healthz | grep success" | quote }}]
  initialDelaySeconds: 30
  periodSeconds: 5
  timeoutSeconds: 2
  failureThreshold: 120
readinessProbe:
  exec:
    command: ["bash", "-c", {{ $check | quote }}]
  initialDelaySeconds: 10
  periodSeconds: 5
  timeoutSeconds: 2
  failureThreshold: 10
{{- end -}}

{{/* A worker's preStop: ask Ray to drain this node (Serve starts replacements elsewhere, then
     stops the local replicas, letting in-flight requests finish within
     graceful_shutdown_timeout_s), then wait until the raylet exits (it does once the draining node
     is idle) for at most preStopSeconds before Kubernetes sends SIGTERM. */}}
{{- define "mistral-serve.workerPreStop" -}}
{{- $wait := include "mistral-serve.preStopSeconds" . -}}
preStop:
  exec:
    command:
      - bash
      - -c
      - {{ printf "ray drain-node --reason DRAIN_NODE_REASON_PREEMPTION --reason-message 'pod terminating' --deadline-remaining-seconds %s || true; for _ in $(seq %s); do grep -qsx raylet /proc/[0-9]*/comm || exit 0; sleep 1; done" (include "mistral-serve.gracePeriod" .) $wait | quote }}
{{- end -}}
