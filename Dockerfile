# Operator image: static build, distroless runtime. (No container runtime exists on the
# development machines, so this file is not exercised by the test suite.)
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin monitoring-operator

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/monitoring-operator /usr/local/bin/monitoring-operator
ENTRYPOINT ["/usr/local/bin/monitoring-operator"]
CMD ["run"]
