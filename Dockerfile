# ecs-secrets-agent: one static binary on an empty base.
#
# From source (needs a registry for the Go image; BuildKit or the classic builder):
#   docker build --build-arg VERSION=1.2.3 -t ecs-secrets-agent:1.2.3 .
# Offline, from a binary built on the host (no image to pull):
#   make image
# `make image` builds only the final stage below, its COPY lines taking the files
# from a build context laid out like the build stage's output (rootfs/, rootfs-run/,
# rootfs-shared/) instead of from the build stage, so both ways produce the same image.

ARG GO_IMAGE=golang:1.26.8-bookworm

FROM ${GO_IMAGE} AS build
ARG VERSION=dev
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY cmd/ cmd/
COPY internal/ internal/
RUN CGO_ENABLED=0 go build -trimpath -gcflags=all=-l -ldflags "-s -w -X main.version=${VERSION}" -o /rootfs/agent ./cmd/agent \
 && mkdir -p /rootfs/etc/ssl/certs /rootfs-run/secrets /rootfs-shared \
 && cp /etc/ssl/certs/ca-certificates.crt /rootfs/etc/ssl/certs/

FROM scratch AS image
COPY --from=build /rootfs/ /
# An empty /run/secrets owned by the agent's user: Fargate and Docker copy a mount
# point's owner from the image into an empty volume, so the agent can write there.
COPY --chown=65532:65532 --from=build /rootfs-run/ /run/
# The same for /shared, where `agent install /shared` puts the binary for the exec
# wrapper (deploy/taskdefs/exec.json): an empty volume mounted there is writable.
COPY --chown=65532:65532 --from=build /rootfs-shared/ /shared/
# The version and revision (`make image` passes scripts/version.sh's and the commit)
# are declared after the COPY lines: the classic builder, building for another
# platform (`make image ARCH=arm64`), commits an ARG step before the first COPY
# as the host's platform and the COPY then fails.
ARG VERSION=dev
ARG REVISION=unknown
LABEL org.opencontainers.image.title="ecs-secrets-agent" \
      org.opencontainers.image.description="Resolves ECS valueFrom references with the task role and writes the secrets into a shared volume" \
      org.opencontainers.image.source="https://github.com/ecs-secrets-agent/ecs-secrets-agent" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
USER 65532:65532
ENTRYPOINT ["/agent"]
CMD ["--help"]
