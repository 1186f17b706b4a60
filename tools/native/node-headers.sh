# Sourced by the native build scripts: sets `nodedir`, the prefix whose include/node holds Node's headers (NODEDIR,
# else the installation of the node on PATH). They are never downloaded: without them the build stops here.
nodedir=${NODEDIR:-$(dirname "$(dirname "$(readlink -f "$(command -v node)")")")}
if [[ ! -f $nodedir/include/node/node_api.h ]]; then
  echo "Node's headers are not in $nodedir/include/node; set NODEDIR to the prefix that holds include/node" \
       "(they are never downloaded)" >&2
  exit 1
fi
