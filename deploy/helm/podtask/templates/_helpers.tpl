{{/* Chart name, possibly overridden. */}}
{{- define "podtask.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name used as the prefix of every resource. Truncated to 63 characters (DNS label limit); a release name that
already contains the chart name is used as is.
*/}}
{{- define "podtask.fullname" -}}
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

{{/* chart label value: name-version */}}
{{- define "podtask.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every resource. */}}
{{- define "podtask.labels" -}}
helm.sh/chart: {{ include "podtask.chart" . }}
{{ include "podtask.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: podtask
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Labels that select the operator pods (immutable once installed). */}}
{{- define "podtask.selectorLabels" -}}
app.kubernetes.io/name: {{ include "podtask.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* ServiceAccount name. */}}
{{- define "podtask.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "podtask.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Lease name for leader election. */}}
{{- define "podtask.leaseName" -}}
{{- default (include "podtask.fullname" .) .Values.leaderElection.leaseName }}
{{- end }}

{{/* Container image reference: repository@digest or repository:tag (tag defaults to appVersion). */}}
{{- define "podtask.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
Rules for the PodTask work: pods, podtasks, their status, and events. Shared by the ClusterRole (all namespaces)
and the per-namespace Roles, so both modes grant exactly the same thing.
*/}}
{{- define "podtask.workRules" -}}
# Pods: one per attempt. Created, watched (owned by the PodTask), read fresh from the API server at the startup
# timeout, deleted at timeouts/deadlines and for cleanup. Never patched or updated.
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["create", "delete", "get", "list", "watch"]
# PodTasks: watched; deleted when ttlAfterFinished has passed.
- apiGroups: ["podtask.dev"]
  resources: ["podtasks"]
  verbs: ["delete", "get", "list", "watch"]
# Status is written only through the status subresource, as a whole (PUT with the read's resourceVersion).
- apiGroups: ["podtask.dev"]
  resources: ["podtasks/status"]
  verbs: ["update"]
{{- if .Values.rbac.ownerReferencesPermissionEnforcement }}
# OwnerReferencesPermissionEnforcement: setting blockOwnerDeletion on a pod's ownerReference needs this.
- apiGroups: ["podtask.dev"]
  resources: ["podtasks/finalizers"]
  verbs: ["update"]
{{- end }}
# Events on every transition (kube-rs's recorder writes events.k8s.io/v1; `kubectl describe` reads them).
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end }}
