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

{{- define "mistral-serve.redisCacheName" -}}
{{- printf "%s-redis-cache" (include "mistral-serve.fullname" .) -}}
{{- end -}}

{{- define "mistral-serve.modelCacheClaim" -}}
{{- default (printf "%s-model-cache" (include "mistral-serve.fullname" .)) .Values.huggingFace.modelCache.existingClaim -}}
{{- end -}}

{{/* The custom Ray resource gateway-hosting groups advertise and every Gateway replica asks for. */}}
{{- define "mistral-serve.gatewayResource" -}}
mistral_serve_gateway
{{- end -}}

{{/* serve.gateway.deployment (camelCase values) with the placement on gateway-hosting groups,
     the only pods holding the Redis URL and the admin token: each Gateway replica asks for one
     unit of the custom Ray resource those groups advertise. */}}
{{- define "mistral-serve.gatewayDeployment" -}}
{{- $gateway := deepCopy .Values.serve.gateway.deployment -}}
{{- $_ := set $gateway "resources" (merge (dict (include "mistral-serve.gatewayResource" .) 1) (default (dict) $gateway.resources)) -}}
{{- toJson $gateway -}}
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

{{/* Worker groups as JSON [{gpu, spec}]: each item of gpuWorkerGroups merged over gpuWorkers
     (one group of gpuWorkers alone when the list is empty), then the CPU group. */}}
{{- define "mistral-serve.workerGroups" -}}
{{- $groups := list -}}
{{- range (.Values.gpuWorkerGroups | default (list (dict))) -}}
{{- $groups = append $groups (dict "gpu" true "spec" (mergeOverwrite (deepCopy $.Values.gpuWorkers) (deepCopy .))) -}}
{{- end -}}
{{- if .Values.cpuWorkers.enabled -}}
{{- $groups = append $groups (dict "gpu" false "spec" .Values.cpuWorkers) -}}
{{- end -}}
{{- toJson $groups -}}
{{- end -}}

{{/* Names of the worker groups that host Gateway replicas (JSON list). */}}
{{- define "mistral-serve.gatewayGroups" -}}
{{- $names := list -}}
{{- range (include "mistral-serve.workerGroups" . | fromJsonArray) -}}
{{- if .spec.hostsGateway }}{{ $names = append $names .spec.groupName }}{{ end -}}
{{- end -}}
{{- toJson $names -}}
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
{{- $names := list -}}
{{- $largestGpus := 0.0 -}}
{{- $gpuCapacity := 0.0 -}}
{{- range (include "mistral-serve.workerGroups" . | fromJsonArray) -}}
{{- $g := .spec -}}
{{- if has $g.groupName $names -}}
{{- fail (printf "worker group name %q is used twice (gpuWorkerGroups, cpuWorkers.groupName)" $g.groupName) -}}
{{- end -}}
{{- $names = append $names $g.groupName -}}
{{- if lt (int $g.maxReplicas) (int $g.minReplicas) -}}
{{- fail (printf "worker group %q: maxReplicas must be at least minReplicas" $g.groupName) -}}
{{- end -}}
{{- if and $g.hostsGateway (hasKey (default (dict) $g.rayStartParams) "resources") -}}
{{- fail (printf "worker group %q hosts the Gateway: declare custom Ray resources in its rayResources, not rayStartParams.resources" $g.groupName) -}}
{{- end -}}
{{- if .gpu -}}
{{- if gt (float64 $g.gpusPerWorker) $largestGpus }}{{ $largestGpus = float64 $g.gpusPerWorker }}{{ end -}}
{{- $gpuCapacity = addf $gpuCapacity (mulf (float64 $g.maxReplicas) (float64 $g.gpusPerWorker)) -}}
{{- end -}}
{{- end -}}
{{- if and $engine.autoscaling.enabled (lt (int $engine.autoscaling.maxReplicas) (int $engine.autoscaling.minReplicas)) -}}
{{- fail "serve.engine.deployment.autoscaling.maxReplicas must be at least minReplicas" -}}
{{- end -}}
{{- if gt (float64 $engine.numGpus) $largestGpus -}}
{{- fail "serve.engine.deployment.numGpus exceeds every GPU group's gpusPerWorker: no worker could host an engine replica" -}}
{{- end -}}
{{- if $engine.autoscaling.enabled -}}
{{- $needed := mulf (float64 $engine.autoscaling.minReplicas) (float64 $engine.numGpus) -}}
{{- if gt $needed $gpuCapacity -}}
{{- fail "serve.engine.deployment.autoscaling.minReplicas x numGpus exceeds the GPU groups' maxReplicas x gpusPerWorker" -}}
{{- end -}}
{{- end -}}
{{- $explicit := int .Values.drain.terminationGracePeriodSeconds -}}
{{- if and (gt $explicit 0) (lt $explicit (int (include "mistral-serve.computedGracePeriod" .))) -}}
{{- fail (printf "drain.terminationGracePeriodSeconds (%d) is below preStop + Serve graceful shutdown + margin (%s): in-flight requests would be killed" $explicit (include "mistral-serve.computedGracePeriod" .)) -}}
{{- end -}}
{{- $modelCache := .Values.huggingFace.modelCache -}}
{{- if and $modelCache.enabled (not $modelCache.existingClaim) (not (has "ReadWriteMany" $modelCache.accessModes)) -}}
{{- fail "huggingFace.modelCache.accessModes needs ReadWriteMany: the head and every worker mount the created claim (or give an existingClaim)" -}}
{{- end -}}
{{- if not (include "mistral-serve.gatewayGroups" . | fromJsonArray) -}}
{{- fail "no worker group hosts the Gateway: set hostsGateway on cpuWorkers (enabled) or on a GPU worker group" -}}
{{- end -}}
{{- if and .Values.rayAuth.secretName (not .Values.rayAuth.enabled) -}}
{{- fail "rayAuth.secretName is set but rayAuth.enabled is false: Ray would run without authentication" -}}
{{- end -}}
{{- if and .Values.redis.cache.enabled (not .Values.redis.bundled) -}}
{{- fail "redis.cache.enabled needs redis.bundled (with an external Redis, point the cache at your own instance)" -}}
{{- end -}}
{{- if .Values.api.ingress.enabled -}}
{{- range .Values.api.ingress.paths -}}
{{- if or (eq . "/") (hasPrefix "/admin" .) (hasPrefix "/docs" .) (hasPrefix "/openapi" .) -}}
{{- fail (printf "api.ingress.paths: %q would publish /admin, /docs or /openapi.json on the public Ingress (use api.adminIngress for /admin)" .) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if .Values.api.adminIngress.enabled -}}
{{- if not .Values.api.adminIngress.className -}}
{{- fail "api.adminIngress.enabled needs api.adminIngress.className (an internal-only IngressClass)" -}}
{{- end -}}
{{- if and .Values.api.ingress.enabled (eq .Values.api.adminIngress.className .Values.api.ingress.className) -}}
{{- fail "api.adminIngress.className must differ from api.ingress.className: /admin never goes through the public controller" -}}
{{- end -}}
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
{{- $gateway := include "mistral-serve.gatewayDeployment" . | fromJson -}}
{{- $items := list (include "mistral-serve.deploymentOptions" (dict "name" "Gateway" "options" $gateway "defaultMaxOngoing" 256) | fromJson) -}}
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

{{/* Environment of a Ray container (replicas inherit it from the raylet). Secrets come from
     Kubernetes Secrets, never through Ray's (visible) deployment config, and only where they are
     used: the Redis URLs and the admin token on gateway-hosting groups only (.gateway); the
     Hugging Face token as a mounted file (HF_TOKEN_PATH), never in the environment. */}}
{{- define "mistral-serve.rayEnv" -}}
{{- $root := .root -}}
{{- if .gateway }}
- name: MISTRAL_SERVE_ADMIN_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ include "mistral-serve.adminSecretName" $root }}
      key: token
{{- if $root.Values.redis.bundled }}
- name: MISTRAL_SERVE_REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "mistral-serve.redisPasswordSecret" $root }}
      key: password
- name: MISTRAL_SERVE_REDIS_URL
  value: {{ printf "redis://:$(MISTRAL_SERVE_REDIS_PASSWORD)@%s.%s.svc:6379/0" (include "mistral-serve.redisName" $root) $root.Release.Namespace | quote }}
{{- if $root.Values.redis.cache.enabled }}
- name: MISTRAL_SERVE_CACHE_REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "mistral-serve.redisCacheName" $root }}
      key: password
- name: MISTRAL_SERVE_CACHE_REDIS_URL
  value: {{ printf "redis://:$(MISTRAL_SERVE_CACHE_REDIS_PASSWORD)@%s.%s.svc:6379/0" (include "mistral-serve.redisCacheName" $root) $root.Release.Namespace | quote }}
{{- end }}
{{- else }}
- name: MISTRAL_SERVE_REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "mistral-serve.redisUrlSecret" $root }}
      key: {{ $root.Values.redis.external.urlSecretKey }}
{{- end }}
{{- end }}
- name: HF_HOME
  value: {{ include "mistral-serve.hfHome" $root }}
{{- if $root.Values.huggingFace.offline }}
- name: HF_HUB_OFFLINE
  value: "1"
{{- end }}
{{- if $root.Values.huggingFace.tokenSecret }}
# The token file, not the token: huggingface_hub reads it from HF_TOKEN_PATH.
- name: HF_TOKEN_PATH
  value: /run/secrets/huggingface/token
{{- end }}
- name: RAY_USAGE_STATS_ENABLED
  value: "0"
{{- with $root.Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "mistral-serve.hfHome" -}}
/home/ray/.cache/huggingface
{{- end -}}

{{- define "mistral-serve.rayVolumeMounts" -}}
- name: tmp
  mountPath: /tmp
- name: cache
  mountPath: /home/ray/.cache
{{- if .Values.huggingFace.modelCache.enabled }}
- name: model-cache
  mountPath: {{ include "mistral-serve.hfHome" . }}
{{- end }}
{{- if .Values.huggingFace.tokenSecret }}
- name: hf-token
  mountPath: /run/secrets/huggingface
  readOnly: true
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
    claimName: {{ include "mistral-serve.modelCacheClaim" . }}
{{- end }}
{{- if .Values.huggingFace.tokenSecret }}
- name: hf-token
  secret:
    secretName: {{ .Values.huggingFace.tokenSecret }}
    defaultMode: 0440
    items:
      - key: token
        path: token
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

{{/* A byte count as an nginx size (8388608 -> 8m). */}}
{{- define "mistral-serve.nginxSize" -}}
{{- if eq (mod . 1048576) 0 -}}{{ div . 1048576 }}m
{{- else if eq (mod . 1024) 0 -}}{{ div . 1024 }}k
{{- else -}}{{ . }}
{{- end -}}
{{- end -}}

{{/* Pod-level per-group options of a Ray pod: runtimeClassName, priorityClassName,
     topologySpreadConstraints (a constraint without labelSelector selects this group's pods)
     and initContainers. .group: head or a worker group's values; .component: its component label. */}}
{{- define "mistral-serve.podExtras" -}}
{{- $root := .root -}}
{{- $group := .group -}}
{{- with $group.runtimeClassName }}
runtimeClassName: {{ . }}
{{- end }}
{{- with $group.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with $group.topologySpreadConstraints }}
topologySpreadConstraints:
{{- range . }}
{{- $constraint := deepCopy . }}
{{- if not (hasKey $constraint "labelSelector") }}
{{- $labels := include "mistral-serve.selectorLabels" $root | fromYaml }}
{{- $_ := set $labels "app.kubernetes.io/component" $.component }}
{{- $_ := set $constraint "labelSelector" (dict "matchLabels" $labels) }}
{{- end }}
  - {{ toYaml $constraint | nindent 4 | trim }}
{{- end }}
{{- end }}
{{- with $group.initContainers }}
initContainers:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* Pod labels and annotations of a Ray pod: the chart's, podLabels/podAnnotations, then the group's. */}}
{{- define "mistral-serve.podMetadata" -}}
{{- $root := .root -}}
labels:
  {{- include "mistral-serve.selectorLabels" $root | nindent 2 }}
  app.kubernetes.io/component: {{ .component }}
  {{- if .gateway }}
  # Hosts Gateway replicas: the pods the Redis NetworkPolicy admits.
  mistral-serve.io/gateway: "true"
  {{- end }}
  {{- with (merge (deepCopy (default (dict) .group.podLabels)) (default (dict) $root.Values.podLabels)) }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- with (merge (deepCopy (default (dict) .group.podAnnotations)) (default (dict) $root.Values.podAnnotations)) }}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}
