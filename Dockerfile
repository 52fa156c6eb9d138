# syntax=docker/dockerfile:1
# Build: docker build --build-arg VERSION=$(git describe --tags --always) -t currents-connect .
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=0.1.0-dev
# The same script, and so the same flags, as CI: a static, stripped binary.
RUN VERSION="${VERSION}" .ci/build /out/connect

# distroless/static carries CA certificates; time zone data is compiled into
# the binary (time/tzdata), so the image needs nothing else.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/connect /usr/local/bin/connect
# Bloblang imports resolve from the working directory, so the mappings and
# pipelines live under one fixed directory that is also the working directory.
WORKDIR /app
COPY bloblang/ /app/bloblang/
COPY config/ /app/config/
USER nonroot:nonroot
# 4195: metrics and /ready (keep it internal); 8080: the Custom HTTP pipeline's endpoint for Braze.
EXPOSE 4195 8080
ENTRYPOINT ["/usr/local/bin/connect"]
CMD ["run", "/app/config/demo.yaml"]
