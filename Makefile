# Build the agent and its image. `make image` needs only Go and a Docker daemon:
# no registry, since the image is FROM scratch and the binary is built here.

VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
REVISION ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
IMAGE    ?= ecs-secrets-agent:dev
# Where `make image` lays out its build context (bin/ is git-ignored).
CONTEXT  ?= bin/image
# The host's CA bundle, copied into the image (Debian's ca-certificates).
CA_CERTS ?= /etc/ssl/certs/ca-certificates.crt

# -gcflags=all=-l (no inlining) keeps the image under 16 MB: 1.3 MB off the
# binary for about 5 ms on a first render (docs/BENCHMARKS.md).
GOFLAGS_STATIC = -trimpath -gcflags=all=-l -ldflags "-s -w -X main.version=$(VERSION)"

.PHONY: agent image image-source image-size clean

# bin/agent-static: the binary that goes into the image.
agent:
	CGO_ENABLED=0 go build $(GOFLAGS_STATIC) -o bin/agent-static ./cmd/agent

# The image from a binary built on the host: the Dockerfile's final stage only,
# with "--from=build /" turned into "./", over a context holding what the build
# stage would have made (rootfs/, rootfs-run/ and rootfs-shared/).
image: agent
	rm -rf $(CONTEXT)
	mkdir -p $(CONTEXT)/rootfs/etc/ssl/certs $(CONTEXT)/rootfs-run/secrets $(CONTEXT)/rootfs-shared
	cp bin/agent-static $(CONTEXT)/rootfs/agent
	cp $(CA_CERTS) $(CONTEXT)/rootfs/etc/ssl/certs/ca-certificates.crt
	sed -n '/^FROM scratch AS image/,$$p' Dockerfile | sed 's|--from=build /|./|' > $(CONTEXT)/Dockerfile
	docker build -q -f $(CONTEXT)/Dockerfile -t $(IMAGE) \
		--build-arg VERSION=$(VERSION) --build-arg REVISION=$(REVISION) $(CONTEXT)

# The image from source, with the Go image from a registry (the whole Dockerfile).
image-source:
	docker build -t $(IMAGE) --build-arg VERSION=$(VERSION) --build-arg REVISION=$(REVISION) .

# The figures for docs/BENCHMARKS.md.
image-size: image
	@echo "binary: $$(stat -c %s bin/agent-static) bytes"
	@echo "image:  $$(docker image inspect -f '{{.Size}}' $(IMAGE)) bytes"

clean:
	rm -rf bin/agent-static $(CONTEXT)
