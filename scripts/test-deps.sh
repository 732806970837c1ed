#!/usr/bin/env bash
# Installs the Debian packages the integration tests need, when it can (root
# on Debian), and otherwise names what is missing, so `make test` says
# which suites will skip. Idempotent: installs nothing that is present.
set -u

# Usage: test-deps.sh [test|bench]
group=${1:-test}

# command-or-path  package  what needs it
case $group in
test)
  needs=(
    "/usr/lib/postgresql/*/bin/initdb postgresql waitfor's PostgreSQL suite (a real server)"
    "pg_isready postgresql-client the pg_isready differential test"
    "runc runc the image's end-to-end suite (a real OCI runtime)"
    "umoci umoci the image's end-to-end suite (unpacking the OCI layout)"
    "skopeo skopeo the image's layout check"
    "/etc/ssl/certs/ca-certificates.crt ca-certificates the image's CA bundle"
    "envsubst gettext-base render's differential test against GNU envsubst"
    "cc gcc the libpq keyword list (PQconndefaults, through a small C program)"
    "git git fetch git::'s suite (git http-backend, git clone as the oracle)"
    "/usr/sbin/sshd openssh-server fetch git::'s SSH test (a real sshd on a loopback port)"
    "openssl openssl cert's oracle (verify, s_server, pkcs12) and the libpq keyword differential's CRL names"
    "keytool openjdk-17-jre-headless cert's truststores read by Java's keytool"
    "memcached memcached waitfor tcp --send/--expect against a real line protocol"
    "/usr/sbin/mariadbd mariadb-server waitfor mysql's suite (a real MariaDB)"
    "mysqladmin mariadb-client the mysqladmin ping differential"
    "redis-server redis-server waitfor redis's suite (a real Redis)"
    "redis-cli redis-tools the redis-cli ping differential"
    "/usr/sbin/nginx nginx-light render --watch's reload target (a real nginx, reloaded by SIGHUP)"
    "/usr/sbin/haproxy haproxy render --watch's reload target (a real HAProxy master, reloaded by SIGUSR2)"
    "/usr/lib/cni/bridge containernetworking-plugins the node suite's pod network (CNI bridge, host-local, portmap)"
    "/bin/busybox busybox-static the node suite's busybox image (the seeds' original pods, the apps' stand-ins)"
    "iptables-restore iptables the node suite's kube-proxy and kubelet rules (inside the node's namespace)"
    "nsenter util-linux the node suite's namespaces"
    "ip iproute2 the node suite's loopback address and routes inside its namespace"
    "/usr/include/seccomp.h libseccomp-dev runc for the node suite, built with seccomp (RuntimeDefault)"
  )
  ;;
bench)
  needs=(
    "busybox busybox-static the busybox loops initbox is compared with"
    "/usr/bin/time time peak RSS measurements"
    "envsubst gettext-base the render section's GNU envsubst"
    "/usr/sbin/mariadbd mariadb-server the mysql latency section"
    "mysqladmin mariadb-client the mysqladmin ping loop"
    "redis-server redis-server the redis latency section"
    "redis-cli redis-tools the redis-cli ping loop"
  )
  ;;
*)
  echo "usage: test-deps.sh [test|bench]" >&2
  exit 2
  ;;
esac

missing_pkgs=()
missing_what=()
for line in "${needs[@]}"; do
  read -r probe pkg what <<<"$line"
  if [[ $probe == /* ]]; then
    compgen -G "$probe" >/dev/null && continue
  else
    command -v "$probe" >/dev/null 2>&1 && continue
    compgen -G "/usr/lib/postgresql/*/bin/$probe" >/dev/null && continue
  fi
  missing_pkgs+=("$pkg")
  missing_what+=("$pkg ($what)")
done

((${#missing_pkgs[@]} == 0)) && exit 0

if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null 2>&1; then
  echo "test-deps: installing ${missing_pkgs[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # Debian starts a package's service on install (a PostgreSQL cluster, an
  # sshd); the tests run their own. policy-rc.d (Debian's invoke-rc.d
  # policy) keeps the packages installed here from starting anything, so
  # nothing needs stopping afterwards — a service the machine already ran
  # (a developer's sshd) is never touched.
  policy=/usr/sbin/policy-rc.d
  made_policy=
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && made_policy=1
  fi
  rc=0
  apt-get update -qq >/dev/null &&
    apt-get install -y -qq --no-install-recommends "${missing_pkgs[@]}" >/dev/null || rc=$?
  [[ -n $made_policy ]] && rm -f "$policy"
  ((rc == 0)) || { echo "test-deps: apt-get failed" >&2; exit 1; }
  exit 0
fi

printf 'test-deps: not installed, those suites will skip (as root on Debian, make test installs them):\n'
printf '  - %s\n' "${missing_what[@]}"
exit 0
