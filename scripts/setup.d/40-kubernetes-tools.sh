#!/usr/bin/env bash
# helm, kubeconform and the Kubernetes API JSON schemas for the chart tests (deploy/test).
# There is no internet here except package registries: helm and kubeconform are built from the
# Go module proxy, and the schemas come from the PyPI package kubernetes-validate, which ships
# them per Kubernetes minor version. Versions are pinned; a second run is a few stat calls.
set -euo pipefail
HELM_VERSION=v4.3.1
KUBECONFORM_VERSION=v0.8.0
# kubernetes-validate 1.37.0 (its newest release) ships schemas up to Kubernetes 1.37, the newest
# released minor (k8s.io/api has only v0.38 alphas on the Go proxy); the tests use the three newest.
KUBERNETES_VALIDATE_VERSION=1.37.0
KUBERNETES_VALIDATE_SHA256=85136d018a27b50ec7fc049d902bfa5193f5976807e6c0f408e3ab6fe078cad9
KUBERNETES_SCHEMA_VERSIONS="1.35.0 1.36.0 1.37.0"

bin="$MESHLENS_CACHE/bin"
tools="$MESHLENS_CACHE/kubernetes-tools"
mkdir -p "$bin" "$tools"

go_install() { # name module version
  local dest="$tools/$1-$3"
  if [ ! -x "$dest/$1" ]; then
    # The official Go tarball's place, for a PATH that lacks it.
    command -v go >/dev/null || PATH=$PATH:/usr/local/go/bin
    command -v go >/dev/null || { echo "40-kubernetes-tools: go (1.24 or newer) is needed to build $1" >&2; exit 1; }
    rm -rf "$dest.tmp" && mkdir -p "$dest.tmp"
    # Own module and build caches, so the build neither depends on nor litters the user's
    # GOPATH; both are only needed for this one build (~600 MB for helm), so they go after it.
    local gobuild
    gobuild=$(mktemp -d)
    GOBIN="$dest.tmp" GOMODCACHE="$gobuild/mod" GOCACHE="$gobuild/build" GOFLAGS=-modcacherw \
      CGO_ENABLED=0 GOTOOLCHAIN=local go install "$2@$3"
    rm -rf "$gobuild"
    rm -rf "$dest" && mv "$dest.tmp" "$dest"
  fi
  ln -sfn "$dest/$1" "$bin/$1"
}
go_install helm helm.sh/helm/v4/cmd/helm "$HELM_VERSION"
go_install kubeconform github.com/yannh/kubeconform/cmd/kubeconform "$KUBECONFORM_VERSION"

schemas="$tools/kubernetes-json-schema-$KUBERNETES_VALIDATE_VERSION"
if [ ! -f "$schemas/.complete" ]; then
  rm -rf "$schemas.tmp" && mkdir -p "$schemas.tmp"
  printf 'kubernetes-validate==%s --hash=sha256:%s\n' "$KUBERNETES_VALIDATE_VERSION" "$KUBERNETES_VALIDATE_SHA256" \
    >"$schemas.tmp/requirements.txt"
  python3 -m pip download -q --no-deps --only-binary=:all: --require-hashes \
    -r "$schemas.tmp/requirements.txt" -d "$schemas.tmp/wheel"
  # A wheel is a zip; only the strict schemas of the chosen versions are kept (~5 MB each).
  # kubernetes-validate resolves their references itself: each file has an https $id and
  # refers to "/api/_definitions.json", which kubeconform would try to fetch. Without the $id
  # and with the reference made relative, it finds _definitions.json next to the file.
  python3 - "$schemas.tmp" $KUBERNETES_SCHEMA_VERSIONS <<'PY'
import glob, json, os, sys, zipfile
dest, versions = sys.argv[1], sys.argv[2:]
prefix = 'kubernetes_validate/kubernetes-json-schema/'
with zipfile.ZipFile(glob.glob(os.path.join(dest, 'wheel', '*.whl'))[0]) as whl:
    for v in versions:
        names = [n for n in whl.namelist() if n.startswith(f'{prefix}v{v}-local-strict/') and n.endswith('.json')]
        if not names:
            sys.exit(f'40-kubernetes-tools: no schemas for Kubernetes {v} in the wheel')
        for n in names:
            out = os.path.join(dest, n[len(prefix):])
            os.makedirs(os.path.dirname(out), exist_ok=True)
            schema = json.loads(whl.read(n))
            schema.pop('$id', None)
            with open(out, 'w') as f:
                f.write(json.dumps(schema).replace('"/api/_definitions.json#', '"_definitions.json#'))
PY
  rm -rf "$schemas.tmp/wheel" "$schemas.tmp/requirements.txt"
  echo "$KUBERNETES_SCHEMA_VERSIONS" >"$schemas.tmp/versions"
  touch "$schemas.tmp/.complete"
  rm -rf "$schemas" && mv "$schemas.tmp" "$schemas"
fi
ln -sfn "$schemas" "$MESHLENS_CACHE/kubernetes-json-schema"
