{{/* A bundled Redis StatefulSet. .role is "redis" (keys, quotas, usage: noeviction, persistent)
     or "redis-cache" (the optional prompt-cache instance: allkeys-lru, no persistence).
     The password reaches redis-server through a generated config file on a memory volume: never
     on a command line (shell builtins write it) nor in the environment. */}}
{{- define "mistral-serve.redisStatefulSet" -}}
{{- $root := .root -}}
{{- $cache := eq .role "redis-cache" -}}
{{- $name := ternary (include "mistral-serve.redisCacheName" $root) (include "mistral-serve.redisName" $root) $cache -}}
{{- $secret := ternary (include "mistral-serve.redisCacheName" $root) (include "mistral-serve.redisPasswordSecret" $root) $cache -}}
{{- $persistent := and (not $cache) $root.Values.redis.persistence.enabled -}}
{{- $resources := ternary $root.Values.redis.cache.resources $root.Values.redis.resources $cache -}}
{{- $maxMemory := ternary $root.Values.redis.cache.maxMemory $root.Values.redis.maxMemory $cache -}}
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: {{ $name }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "mistral-serve.labels" $root | nindent 4 }}
    app.kubernetes.io/component: {{ .role }}
spec:
  serviceName: {{ $name }}
  replicas: 1
  selector:
    matchLabels:
      {{- include "mistral-serve.selectorLabels" $root | nindent 6 }}
      app.kubernetes.io/component: {{ .role }}
  template:
    metadata:
      labels:
        {{- include "mistral-serve.selectorLabels" $root | nindent 8 }}
        app.kubernetes.io/component: {{ .role }}
    spec:
      automountServiceAccountToken: false
      serviceAccountName: {{ include "mistral-serve.serviceAccountName" $root }}
      # A high uid of no image user: the data directory belongs to fsGroup.
      securityContext:
        runAsNonRoot: true
        runAsUser: 10001
        runAsGroup: 10001
        fsGroup: 10001
        seccompProfile:
          type: RuntimeDefault
      {{- with $root.Values.redis.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $root.Values.redis.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      containers:
        - name: redis
          image: {{ include "mistral-serve.redisImage" $root }}
          imagePullPolicy: {{ $root.Values.redis.image.pullPolicy }}
          command:
            - sh
            - -c
            - |
              umask 077
              {
                echo "port 6379"
                echo "dir /data"
                {{- if $cache }}
                echo "appendonly no"
                echo 'save ""'
                # Only cached responses live here: the least recently used go first.
                echo "maxmemory-policy allkeys-lru"
                {{- else }}
                echo "appendonly yes"
                # Keys, quotas and usage are never evicted: once full, writes are refused (the
                # prompt cache then bypasses; docs/security.md).
                echo "maxmemory-policy noeviction"
                {{- end }}
                echo "maxmemory {{ $maxMemory }}"
                printf 'requirepass "%s"\n' "$(cat /run/secrets/redis/password)"
              } > /run/redis/redis.conf
              exec redis-server /run/redis/redis.conf
          ports:
            - name: redis
              containerPort: 6379
          livenessProbe:
            exec:
              command: ["sh", "-c", "REDISCLI_AUTH=\"$(cat /run/secrets/redis/password)\" redis-cli ping | grep -q PONG"]
            initialDelaySeconds: 10
            periodSeconds: 10
            timeoutSeconds: 3
          readinessProbe:
            exec:
              command: ["sh", "-c", "REDISCLI_AUTH=\"$(cat /run/secrets/redis/password)\" redis-cli ping | grep -q PONG"]
            initialDelaySeconds: 2
            periodSeconds: 5
            timeoutSeconds: 3
          resources:
            {{- toYaml $resources | nindent 12 }}
          securityContext:
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
            capabilities:
              drop: [ALL]
          volumeMounts:
            - name: data
              mountPath: /data
            - name: password
              mountPath: /run/secrets/redis
              readOnly: true
            - name: config
              mountPath: /run/redis
            - name: tmp
              mountPath: /tmp
      volumes:
        - name: password
          secret:
            secretName: {{ $secret }}
            items:
              - key: password
                path: password
        # The generated redis.conf holds the password: memory only, never the node's disk.
        - name: config
          emptyDir:
            medium: Memory
            sizeLimit: 1Mi
        - name: tmp
          emptyDir: {}
        {{- if not $persistent }}
        - name: data
          emptyDir: {}
        {{- end }}
  {{- if $persistent }}
  volumeClaimTemplates:
    - metadata:
        name: data
      spec:
        accessModes: [ReadWriteOnce]
        {{- with $root.Values.redis.persistence.storageClass }}
        storageClassName: {{ . }}
        {{- end }}
        resources:
          requests:
            storage: {{ $root.Values.redis.persistence.size }}
  {{- end }}
{{- end -}}
