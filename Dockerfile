# Multi-stage build of the gateway: a full Rust toolchain builds the release binary,
# a distroless runtime image (glibc, CA certificates, no shell) runs it as non-root.
#   docker build -t otel-pinpoint-bridge .
#   docker run --rm -p 4317:4317 -p 4318:4318 otel-pinpoint-bridge run --config /etc/otel-pinpoint-bridge/gateway.yaml
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
# Build dependencies first, so source edits reuse the cached layer.
COPY Cargo.toml Cargo.lock build.rs ./
COPY proto ./proto
COPY config ./config
COPY src ./src
COPY benches ./benches
RUN cargo build --release --locked --bin otel-pinpoint-bridge

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/otel-pinpoint-bridge /usr/local/bin/otel-pinpoint-bridge
COPY config/container.yaml /etc/otel-pinpoint-bridge/gateway.yaml
# distroless's nonroot user (65532); the gateway needs no privileges and no writable root.
USER 65532:65532
EXPOSE 4317 4318 8888
ENTRYPOINT ["/usr/local/bin/otel-pinpoint-bridge"]
CMD ["run", "--config", "/etc/otel-pinpoint-bridge/gateway.yaml"]
