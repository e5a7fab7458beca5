# Build the agent, its images and a release. `make image` needs only Go and a
# Docker daemon: no registry, since the image is FROM scratch and the binary is
# built here.

# A semantic version from the nearest vX.Y.Z tag (scripts/version.sh says which
# form when): it goes into `agent version` and the image labels.
VERSION  ?= $(shell scripts/version.sh 2>/dev/null || echo dev)
REVISION ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
# The image's architecture: amd64 or arm64 (Graviton). The binary is
# cross-compiled and the image has no RUN step, so no emulation is needed.
ARCH     ?= amd64
ifeq ($(ARCH),amd64)
IMAGE    ?= ecs-secrets-agent:dev
else
IMAGE    ?= ecs-secrets-agent:dev-$(ARCH)
endif
# Where `make image` lays out its build context (bin/ is git-ignored).
CONTEXT  ?= bin/image-$(ARCH)
# The host's CA bundle, copied into the image (Debian's ca-certificates).
CA_CERTS ?= /etc/ssl/certs/ca-certificates.crt
# Where `make release` puts its files (git-ignored), and for which architectures.
DIST     ?= dist
RELEASE_ARCHES = amd64 arm64

# -gcflags=all=-l (no inlining) keeps the image under 16 MB: 1.3 MB off the
# binary for about 5 ms on a first render (docs/BENCHMARKS.md).
GOFLAGS_STATIC = -trimpath -gcflags=all=-l -ldflags "-s -w -X main.version=$(VERSION)"

.PHONY: agent agent-linux image image-source image-size release clean

# bin/agent-static: the binary for this machine, built as the image's is.
agent:
	CGO_ENABLED=0 go build $(GOFLAGS_STATIC) -o bin/agent-static ./cmd/agent

# bin/agent-linux-$(ARCH): the binary that goes into the image.
agent-linux:
	CGO_ENABLED=0 GOOS=linux GOARCH=$(ARCH) go build $(GOFLAGS_STATIC) -o bin/agent-linux-$(ARCH) ./cmd/agent

# The image from a binary built on the host: the Dockerfile's final stage only,
# with "--from=build /" turned into "./", over a context holding what the build
# stage would have made (rootfs/, rootfs-run/ and rootfs-shared/).
image: agent-linux
	rm -rf $(CONTEXT)
	mkdir -p $(CONTEXT)/rootfs/etc/ssl/certs $(CONTEXT)/rootfs-run/secrets $(CONTEXT)/rootfs-shared
	cp bin/agent-linux-$(ARCH) $(CONTEXT)/rootfs/agent
	cp $(CA_CERTS) $(CONTEXT)/rootfs/etc/ssl/certs/ca-certificates.crt
	sed -n '/^FROM scratch AS image/,$$p' Dockerfile | sed 's|--from=build /|./|' > $(CONTEXT)/Dockerfile
	docker build -q --platform linux/$(ARCH) -f $(CONTEXT)/Dockerfile -t $(IMAGE) \
		--build-arg VERSION=$(VERSION) --build-arg REVISION=$(REVISION) $(CONTEXT)

# The image from source, with the Go image from a registry (the whole Dockerfile).
image-source:
	docker build -t $(IMAGE) --build-arg VERSION=$(VERSION) --build-arg REVISION=$(REVISION) .

# The figures for docs/BENCHMARKS.md.
image-size: image
	@echo "binary: $$(stat -c %s bin/agent-linux-$(ARCH)) bytes"
	@echo "image:  $$(docker image inspect -f '{{.Size}}' $(IMAGE)) bytes ($$(docker image inspect -f '{{.Architecture}}' $(IMAGE)))"

# dist/: static binaries for each architecture (built as `make agent` builds),
# a CycloneDX SBOM for each (tools/sbom, from the binary's own build
# information: what `go version -m` prints), and SHA256SUMS over them all.
release:
	rm -rf $(DIST)
	mkdir -p $(DIST)
	set -e; for arch in $(RELEASE_ARCHES); do \
		CGO_ENABLED=0 GOOS=linux GOARCH=$$arch go build $(GOFLAGS_STATIC) -o $(DIST)/agent-linux-$$arch ./cmd/agent; \
		go run ./tools/sbom -version $(VERSION) -o $(DIST)/agent-linux-$$arch.cdx.json $(DIST)/agent-linux-$$arch; \
	done
	cd $(DIST) && sha256sum $(foreach a,$(RELEASE_ARCHES),agent-linux-$(a) agent-linux-$(a).cdx.json) > SHA256SUMS
	@echo "$(DIST)/: $(VERSION)"; cat $(DIST)/SHA256SUMS

clean:
	rm -rf bin/agent-static $(foreach a,$(RELEASE_ARCHES),bin/agent-linux-$(a) bin/image-$(a)) bin/image $(DIST)
