#!/usr/bin/env bash
# Writes fresh random tokens for the compose cluster into deploy/docker/tokens/, or into the folder
# given as the first argument (once; an existing folder is kept, so the running cluster keeps its
# tokens):
#   users.tokens, agents.tokens   the coordinator's --user-tokens and --agent-tokens files; the user
#                                 token is named `admin` (it may cancel any sweep)
#   user.token                    what `sweep submit --token-file` presents from the host
#   agent.token                   what the agents present
# The folder is readable by its owner alone. As root the files are given to uid 10001, the user
# the images run as, with mode 0600; otherwise they are made world-readable inside that private
# folder (the agents then warn that their token file is readable by others).
set -euo pipefail
dir=${1:-"$(cd "$(dirname "$0")" && pwd)/tokens"}
if [[ -f $dir/agent.token ]]; then
  echo "tokens: $dir already holds tokens; remove it for new ones"
  exit 0
fi
token() { od -An -N32 -tx1 /dev/urandom | tr -d ' \n'; }
mkdir -p "$dir"
chmod 700 "$dir"
user=$(token)
agent=$(token)
printf 'admin:%s\n' "$user" >"$dir/users.tokens"
printf '%s\n' "$agent" >"$dir/agents.tokens"
printf '%s\n' "$user" >"$dir/user.token"
printf '%s\n' "$agent" >"$dir/agent.token"
if [[ $(id -u) == 0 ]]; then
  chown 10001:10001 "$dir"/{users.tokens,agents.tokens,agent.token}
  chmod 600 "$dir"/*
else
  chmod 644 "$dir"/{users.tokens,agents.tokens,agent.token}
  chmod 600 "$dir/user.token"
fi
echo "tokens: written to $dir"
