# Operator image: static build, distroless runtime. (No container runtime exists on the
# development machines, so this file is not exercised by the test suite.)
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
# jemalloc fixes the page size at build time and refuses to start on a kernel with larger
# pages: arm64 kernels use 4K, 16K or 64K pages, so arm64 builds take 64K (it runs on all three).
ARG TARGETARCH
RUN if [ "$TARGETARCH" = arm64 ]; then export JEMALLOC_SYS_WITH_LG_PAGE=16; fi; \
    cargo build --release --locked --bin monitoring-operator

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/monitoring-operator /usr/local/bin/monitoring-operator
ENTRYPOINT ["/usr/local/bin/monitoring-operator"]
CMD ["run"]
