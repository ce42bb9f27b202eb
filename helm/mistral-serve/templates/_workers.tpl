{{/* One Ray worker group of the RayService (GPU or CPU). */}}
{{- define "mistral-serve.workerGroup" -}}
{{- $root := .root -}}
{{- $group := .group -}}
- groupName: {{ $group.groupName }}
  replicas: {{ $group.replicas }}
  minReplicas: {{ $group.minReplicas }}
  maxReplicas: {{ $group.maxReplicas }}
  idleTimeoutSeconds: {{ $group.idleTimeoutSeconds }}
  {{- $rayResources := deepCopy (default (dict) $group.rayResources) -}}
  {{- if $group.hostsGateway -}}
  {{- $_ := set $rayResources (include "mistral-serve.gatewayResource" $root) "1000" -}}
  {{- end }}
  {{- with $rayResources }}
  # Custom Ray resources of this group's nodes (`ray start --resources`).
  resources:
    {{- range $key, $value := . }}
    {{ $key | quote }}: {{ $value | toString | quote }}
    {{- end }}
  {{- end }}
  rayStartParams:
    metrics-export-port: {{ $root.Values.metrics.port | quote }}
    {{- range $key, $value := $group.rayStartParams }}
    {{ $key }}: {{ $value | quote }}
    {{- end }}
  template:
    metadata:
      {{- include "mistral-serve.podMetadata" (dict "root" $root "group" $group "component" (printf "ray-worker-%s" $group.groupName) "gateway" $group.hostsGateway) | nindent 6 }}
    spec:
      serviceAccountName: {{ include "mistral-serve.serviceAccountName" $root }}
      automountServiceAccountToken: false
      {{- include "mistral-serve.podExtras" (dict "root" $root "group" $group "component" (printf "ray-worker-%s" $group.groupName)) | nindent 6 }}
      securityContext:
        {{- toYaml $root.Values.podSecurityContext | nindent 8 }}
      # Drain: preStop (Ray drains the node) + Serve's graceful shutdown + margin.
      terminationGracePeriodSeconds: {{ include "mistral-serve.gracePeriod" $root }}
      {{- with $root.Values.imagePullSecrets }}
      imagePullSecrets:
        {{- range . }}
        - name: {{ . }}
        {{- end }}
      {{- end }}
      {{- with $group.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $group.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $group.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      containers:
        - name: ray-worker
          image: {{ include "mistral-serve.image" $root }}
          imagePullPolicy: {{ $root.Values.image.pullPolicy }}
          ports:
            - {name: serve, containerPort: {{ $root.Values.api.port }}}
            - {name: metrics, containerPort: {{ $root.Values.metrics.port }}}
          env:
            {{- include "mistral-serve.rayEnv" (dict "root" $root "gateway" $group.hostsGateway) | nindent 12 }}
            # When SIGTERM reaches `ray start` after the preStop, it keeps draining this long
            # (Ray's default, 30 s, would cut a replica's graceful shutdown short).
            - name: RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S
              value: {{ include "mistral-serve.maxGracefulShutdown" $root | quote }}
          {{- with $group.envFrom }}
          envFrom:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          resources:
            {{- $resources := deepCopy $group.resources -}}
            {{- if and .gpu (gt (int $group.gpusPerWorker) 0) -}}
            {{- $_ := set $resources "limits" (merge (dict "nvidia.com/gpu" $group.gpusPerWorker) (default (dict) $resources.limits)) -}}
            {{- $_ := set $resources "requests" (merge (dict "nvidia.com/gpu" $group.gpusPerWorker) (default (dict) $resources.requests)) -}}
            {{- end }}
            {{- toYaml $resources | nindent 12 }}
          securityContext:
            {{- toYaml $root.Values.securityContext | nindent 12 }}
          {{- include "mistral-serve.rayProbes" (dict "serving" true "port" $root.Values.api.port) | nindent 10 }}
          lifecycle:
            {{- include "mistral-serve.workerPreStop" $root | nindent 12 }}
          volumeMounts:
            {{- include "mistral-serve.rayVolumeMounts" $root | nindent 12 }}
            {{- if .gpu }}
            - name: dshm
              mountPath: /dev/shm
            {{- end }}
            {{- with $group.extraVolumeMounts }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
        {{- with $group.sidecars }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      volumes:
        {{- include "mistral-serve.rayVolumes" $root | nindent 8 }}
        {{- if .gpu }}
        - name: dshm
          emptyDir:
            medium: Memory
            sizeLimit: {{ $group.shmSize }}
        {{- end }}
{{- with $group.extraVolumes }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
{{- end -}}
