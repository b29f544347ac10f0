#!/usr/bin/env bash
# Prepares the container engines the engine tests run against, on Debian 12 (bookworm).
#
# Idempotent: every step first checks whether its result is already there, so a second
# run is a fast no-op (a few HTTP pings). Quiet unless a step fails, in which case the
# step's log is printed and the script exits non-zero.
#
# What it sets up:
#   - packages: docker.io, podman + runc, busybox-static, docker-registry, git, curl (and
#     podman's helpers), installed only when missing;
#   - /etc/containers/containers.conf: runc (crun fails on this sandbox's hybrid cgroups),
#     cgroupfs, default ulimits; a registries.conf drop-in marking 127.0.0.1:5000 insecure;
#   - dockerd on /var/run/docker.sock, `podman system service` on
#     /run/cropscode-test/podman.sock, docker-registry on 127.0.0.1:5000 (storage under
#     /var/lib/cropscode-test-registry), each started in the background only if it does
#     not answer; logs under /var/log/cropscode-test/;
#   - test images in both engines (no registry outside this machine is reachable, so they
#     are built from local files):
#       cropscode-test/busybox:latest  busybox-static + `busybox --install -s`, /tmp,
#                                      /etc/passwd with root and `user` (uid 1000)
#       cropscode-test/git:latest      the same plus Debian's git, its helpers
#                                      (/usr/lib/git-core) and every shared library they
#                                      link (found with ldd): a copy of files already on
#                                      the machine, so it takes about a second and needs
#                                      no mirror (debootstrap would take minutes)
#     and 127.0.0.1:5000/cropscode-test/busybox:latest pushed into the local registry
#     (then untagged locally) for pull tests;
#   - /run/cropscode-test/engines.env: `export DOCKER_SOCK=… PODMAN_SOCK=… REGISTRY=…`
#     for the tests to source or read;
#   - for the console's browser test (tests/browser/): Debian's chromium and a font, and the
#     test's pinned npm packages (`npm ci` in tests/browser, skipped while its lock file is
#     unchanged); Node.js and npm are the machine's own.
#
# Images carry the label cropscode.test.recipe=$RECIPE; bump RECIPE when the image
# contents change so that prepared machines rebuild them.
set -euo pipefail

RECIPE=1
STATE_DIR=/run/cropscode-test
LOG_DIR=/var/log/cropscode-test
WORK_DIR=/var/lib/cropscode-test
REGISTRY_DIR=/var/lib/cropscode-test-registry
REGISTRY_ADDR=127.0.0.1:5000
DOCKER_SOCK=/var/run/docker.sock
PODMAN_SOCK=$STATE_DIR/podman.sock
ENV_FILE=$STATE_DIR/engines.env
# Debian's CLI, not whatever else is first on PATH: its API version matches the daemon.
DOCKER=/usr/bin/docker

PACKAGES=(docker.io podman runc conmon containernetworking-plugins uidmap fuse-overlayfs slirp4netns
    iptables busybox-static docker-registry git curl ca-certificates chromium fonts-dejavu-core
    python3-prometheus-client
    # systemd-analyze verifies the unit `cropscode service install` writes.
    systemd)
REPO=$(cd "$(dirname "$0")/../.." && pwd)

if [[ $(id -u) -ne 0 ]]; then
    if command -v sudo >/dev/null; then
        exec sudo -E bash "$0" "$@"
    fi
    echo "prepare.sh: must run as root (installs packages, starts dockerd)" >&2
    exit 1
fi

mkdir -p "$STATE_DIR" "$LOG_DIR" "$WORK_DIR"

# Runs a command with its output in a log file; prints the log and fails if it fails.
quiet() {
    local log=$1
    shift
    if ! "$@" >"$log" 2>&1; then
        echo "prepare.sh: failed: $*" >&2
        tail -n 40 "$log" >&2
        exit 1
    fi
}

fail() {
    echo "prepare.sh: $*" >&2
    exit 1
}

# True when the engine API on a unix socket answers GET /_ping.
engine_answers() {
    [[ -S $1 ]] && curl -sf --max-time 2 --unix-socket "$1" http://engine/_ping >/dev/null 2>&1
}

registry_answers() {
    curl -sf --max-time 2 "http://$REGISTRY_ADDR/v2/" >/dev/null 2>&1
}

# wait_for SECONDS DESCRIPTION LOG COMMAND...: polls COMMAND every 0.2 s.
wait_for() {
    local seconds=$1 what=$2 log=$3
    shift 3
    local deadline=$((SECONDS + seconds))
    until "$@"; do
        if ((SECONDS >= deadline)); then
            echo "prepare.sh: $what did not come up within ${seconds}s; its log ($log):" >&2
            tail -n 40 "$log" >&2 || true
            exit 1
        fi
        sleep 0.2
    done
}

# Starts a long-lived daemon detached from this script (own session, no terminal).
start_daemon() {
    local log=$1
    shift
    setsid nohup "$@" >>"$log" 2>&1 </dev/null &
}

# ---------------------------------------------------------------- packages
install_packages() {
    local missing=() pkg
    for pkg in "${PACKAGES[@]}"; do
        if [[ $(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null) != "install ok installed" ]]; then
            missing+=("$pkg")
        fi
    done
    ((${#missing[@]} == 0)) && return 0
    export DEBIAN_FRONTEND=noninteractive
    # `apt-get update` fails as a whole when one index does (a mirror mid-sync, a foreign
    # architecture's list): retry, then go on with what was fetched and let the install
    # decide.
    local attempt
    for attempt in 1 2 3; do
        apt-get update -q >"$LOG_DIR/apt-update.log" 2>&1 && break
        sleep $((attempt * 2))
    done
    for attempt in 1 2; do
        apt-get install -y -q --no-install-recommends "${missing[@]}" >"$LOG_DIR/apt-install.log" 2>&1 && return 0
        sleep 3
    done
    echo "prepare.sh: failed: apt-get install ${missing[*]}" >&2
    tail -n 40 "$LOG_DIR/apt-update.log" "$LOG_DIR/apt-install.log" >&2
    exit 1
}

# ---------------------------------------------------------------- configuration
# Writes a file only when its content differs (keeps the fast path free of writes).
write_file() {
    local path=$1 content=$2
    if [[ ! -f $path ]] || [[ $(<"$path") != "$content" ]]; then
        mkdir -p "$(dirname "$path")"
        printf '%s\n' "$content" >"$path"
    fi
}

configure() {
    write_file /etc/containers/containers.conf '# Written by cropscode tests/env/prepare.sh.
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=1000:1000"]

[engine]
# crun fails on hybrid (v1 + unified) cgroup hosts such as this sandbox.
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"'

    write_file /etc/containers/registries.conf.d/50-cropscode-test.conf "# Written by cropscode tests/env/prepare.sh.
[[registry]]
location = \"$REGISTRY_ADDR\"
insecure = true"

    write_file "$WORK_DIR/registry.yml" "version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $REGISTRY_DIR
  delete:
    enabled: true
http:
  addr: $REGISTRY_ADDR"
}

# ---------------------------------------------------------------- services
start_services() {
    if ! engine_answers "$DOCKER_SOCK"; then
        start_daemon "$LOG_DIR/dockerd.log" dockerd --default-ulimit nofile=20000:20000
    fi
    if ! engine_answers "$PODMAN_SOCK"; then
        rm -f "$PODMAN_SOCK"
        start_daemon "$LOG_DIR/podman.log" podman system service --time=0 "unix://$PODMAN_SOCK"
    fi
    if ! registry_answers; then
        mkdir -p "$REGISTRY_DIR"
        start_daemon "$LOG_DIR/registry.log" docker-registry serve "$WORK_DIR/registry.yml"
    fi
    wait_for 60 dockerd "$LOG_DIR/dockerd.log" engine_answers "$DOCKER_SOCK"
    wait_for 30 "podman system service" "$LOG_DIR/podman.log" engine_answers "$PODMAN_SOCK"
    wait_for 30 docker-registry "$LOG_DIR/registry.log" registry_answers
}

# ---------------------------------------------------------------- images
# True when the engine behind SOCKET has IMAGE built from the current recipe.
image_current() {
    local sock=$1 image=$2 json
    json=$(curl -sf --max-time 5 --unix-socket "$sock" "http://engine/images/$image/json" 2>/dev/null) || return 1
    [[ $json =~ \"cropscode.test.recipe\":[[:space:]]*\"$RECIPE\" ]]
}

make_busybox_rootfs() {
    local root=$1
    rm -rf "$root"
    mkdir -p "$root"/{bin,etc,root,tmp,home/user,work}
    cp /bin/busybox "$root/bin/busybox"
    chroot "$root" /bin/busybox --install -s /bin
    chmod 1777 "$root/tmp"
    printf 'root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home/user:/bin/sh\n' >"$root/etc/passwd"
    printf 'root:x:0:\nuser:x:1000:\n' >"$root/etc/group"
    chown 1000:1000 "$root/home/user"
}

# Copies FILE and the shared libraries it links into ROOT at the same paths.
copy_with_libs() {
    local root=$1 file=$2 lib
    mkdir -p "$root$(dirname "$file")"
    cp -a "$file" "$root$file"
    while read -r lib; do
        [[ -e $root$lib ]] && continue
        mkdir -p "$root$(dirname "$lib")"
        cp -L "$lib" "$root$lib"
    done < <(ldd "$file" 2>/dev/null | grep -oE '/[^ ]+' || true)
}

make_git_rootfs() {
    local root=$1 file
    make_busybox_rootfs "$root"
    # busybox has no /usr; git's own layout is /usr/bin + /usr/lib/git-core + /usr/share/git-core.
    copy_with_libs "$root" /usr/bin/git
    mkdir -p "$root/usr/lib" "$root/usr/share"
    cp -a /usr/lib/git-core "$root/usr/lib/"
    cp -a /usr/share/git-core "$root/usr/share/"
    while read -r file; do
        copy_with_libs "$root" "$file"
    done < <(find /usr/lib/git-core -maxdepth 1 -type f -perm -u+x)
    # For https remotes (the product clones over https): CA bundle.
    if [[ -d /etc/ssl/certs ]]; then
        mkdir -p "$root/etc/ssl"
        cp -aL /etc/ssl/certs "$root/etc/ssl/" 2>/dev/null || true
    fi
}

# import_image ROOT IMAGE SMOKE-COMMAND...: imports ROOT as IMAGE where it is not current,
# then runs SMOKE-COMMAND in a container of it, so a broken image fails here, not in a test.
import_image() {
    local root=$1 image=$2
    local tarball=$WORK_DIR/${image//[\/:]/_}.tar
    shift 2
    local smoke=("$@")
    tar --numeric-owner -C "$root" -cf "$tarball" .
    local changes=(--change 'CMD ["/bin/sh"]' --change "LABEL cropscode.test.recipe=$RECIPE"
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin')
    if ! image_current "$DOCKER_SOCK" "$image"; then
        quiet "$LOG_DIR/import.log" $DOCKER import "${changes[@]}" "$tarball" "$image"
        quiet "$LOG_DIR/smoke.log" $DOCKER run --rm "$image" "${smoke[@]}"
    fi
    if ! image_current "$PODMAN_SOCK" "$image"; then
        quiet "$LOG_DIR/import.log" podman import "${changes[@]}" "$tarball" "$image"
        quiet "$LOG_DIR/smoke.log" podman run --rm "$image" "${smoke[@]}"
    fi
    rm -f "$tarball"
}

prepare_image() {
    local image=$1 maker=$2
    shift 2
    if image_current "$DOCKER_SOCK" "$image" && image_current "$PODMAN_SOCK" "$image"; then
        return 0
    fi
    local root=$WORK_DIR/rootfs
    quiet "$LOG_DIR/rootfs.log" "$maker" "$root"
    import_image "$root" "$image" "$@"
    rm -rf "$root"
}

registry_has() {
    curl -sf --max-time 5 -o /dev/null \
        -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
        "http://$REGISTRY_ADDR/v2/$1/manifests/$2"
}

push_to_registry() {
    local name=cropscode-test/busybox tag=latest
    registry_has "$name" "$tag" && return 0
    local remote=$REGISTRY_ADDR/$name:$tag
    quiet "$LOG_DIR/push.log" $DOCKER tag "$name:$tag" "$remote"
    quiet "$LOG_DIR/push.log" $DOCKER push "$remote"
    # Untag so that a test pulling it really pulls.
    quiet "$LOG_DIR/push.log" $DOCKER rmi "$remote"
}

# ---------------------------------------------------------------- browser test
# `npm ci` where the installed tree is not the one package-lock.json pins (a stamp holds its hash).
npm_ci() {
    local dir=$1 stamp=$1/node_modules/.cropscode-lock.sha256 sum
    command -v npm >/dev/null || fail "npm is needed for the browser test (Node.js 20 with npm)"
    sum=$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)
    [[ -f $stamp && $(<"$stamp") == "$sum" ]] && return 0
    quiet "$LOG_DIR/npm.log" npm ci --prefix "$dir" --no-audit --no-fund --ignore-scripts
    printf '%s\n' "$sum" >"$stamp"
}

# ---------------------------------------------------------------- main
install_packages
configure
start_services
prepare_image cropscode-test/busybox:latest make_busybox_rootfs /bin/sh -c 'id user && ls /tmp'
prepare_image cropscode-test/git:latest make_git_rootfs /bin/sh -c 'git --version && git init -q /tmp/r'
push_to_registry
npm_ci "$REPO/tests/browser"

write_file "$ENV_FILE" "export DOCKER_SOCK=$DOCKER_SOCK
export PODMAN_SOCK=$PODMAN_SOCK
export REGISTRY=$REGISTRY_ADDR"
