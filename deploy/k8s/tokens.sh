#!/usr/bin/env bash
# Creates the Secret `sweep-tokens` (namespace sweep) with fresh random tokens, once per cluster.
# It is not part of the kustomizations: tokens must not live in git, and `kubectl apply -k` must
# not replace them. Keys:
#   users.tokens, agents.tokens   the coordinator's --user-tokens and --agent-tokens files; the
#                                 user token is named `admin` (it may cancel any sweep)
#   user.token, agent.token       the one token the submit Job and the agents present
#
#   deploy/k8s/tokens.sh            create the namespace (if needed) and the Secret with kubectl
#   deploy/k8s/tokens.sh --print    print the Secret as YAML instead (for a secrets manager)
#
# More users: add `NAME:TOKEN` lines to users.tokens (`kubectl -n sweep edit secret sweep-tokens`,
# values are base64) and restart the coordinator, which reads the files once at start. Each sweep
# belongs to the name of the token that submitted it.
set -euo pipefail

NAMESPACE=sweep

token() {
  # 32 random bytes as 64 hex digits.
  od -An -N32 -tx1 /dev/urandom | tr -d ' \n'
}

b64() {
  printf '%s\n' "$1" | base64 | tr -d '\n'
}

user=$(token)
agent=$(token)
secret=$(cat <<YAML
apiVersion: v1
kind: Secret
metadata:
  name: sweep-tokens
  namespace: $NAMESPACE
  labels:
    app.kubernetes.io/part-of: sweep
type: Opaque
data:
  users.tokens: $(b64 "admin:$user")
  agents.tokens: $(b64 "$agent")
  user.token: $(b64 "$user")
  agent.token: $(b64 "$agent")
YAML
)

case "${1:-}" in
  --print)
    printf '%s\n' "$secret"
    ;;
  "")
    if kubectl -n "$NAMESPACE" get secret sweep-tokens >/dev/null 2>&1; then
      echo "tokens.sh: secret $NAMESPACE/sweep-tokens exists already; delete it first to make new tokens" >&2
      exit 1
    fi
    kubectl get namespace "$NAMESPACE" >/dev/null 2>&1 || kubectl create namespace "$NAMESPACE"
    printf '%s\n' "$secret" | kubectl create -f -
    echo "tokens.sh: your user token: kubectl -n $NAMESPACE get secret sweep-tokens -o jsonpath='{.data.user\\.token}' | base64 -d"
    ;;
  *)
    echo "usage: $0 [--print]" >&2
    exit 2
    ;;
esac
