# syntax=docker/dockerfile:1
# Multi-stage build: a static binary on a distroless base, run as non-root.
# The healthcheck uses the binary itself (`ragstream probe`): there is no
# curl or shell in the final image.

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
# Everything else the build needs; .dockerignore keeps tests, testdata and
# local state out of the context.
COPY . .
ARG VERSION=dev
ARG COMMIT=unknown
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X github.com/ragstream/ragstream/internal/buildinfo.Version=${VERSION} -X github.com/ragstream/ragstream/internal/buildinfo.Commit=${COMMIT}" -o /out/ragstream ./cmd/ragstream

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/ragstream /usr/local/bin/ragstream
# The admin port must be reachable from outside the container.
ENV RAGSTREAM_ADMIN__ADDR=0.0.0.0:8080
EXPOSE 8080
USER 65532:65532
HEALTHCHECK --interval=10s --timeout=4s --start-period=20s --retries=3 \
  CMD ["/usr/local/bin/ragstream", "probe", "http://127.0.0.1:8080/health/live"]
ENTRYPOINT ["/usr/local/bin/ragstream"]
# Configuration comes from RAGSTREAM_* variables; mount a file and add
# "--config", "/etc/ragstream/config.yaml" to use one.
CMD ["run"]
