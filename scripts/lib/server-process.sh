# Sourced by the scripts that start servers as child processes (bench-server.sh, gpu-verify.sh).
# free_port: an unused loopback port. stop_server: SIGTERM to $server_pid, SIGKILL after 10 s, reaped;
# installed as the EXIT trap so that no server outlives its script.

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

server_pid=""
stop_server() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$server_pid" 2>/dev/null || true
  fi
  if [ -n "$server_pid" ]; then wait "$server_pid" 2>/dev/null || true; fi
  server_pid=""
}
trap stop_server EXIT
