# Calanque: build a static-ish release binary, ship it on a slim base.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --bin calanque

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/calanque /usr/local/bin/calanque
ENV CALANQUE_HOST=0.0.0.0 CALANQUE_PORT=1026 CALANQUE_DATA_DIR=/var/lib/calanque
# mimalloc returns freed memory to the system at once instead of on the freeing thread's
# next allocations: resident memory after a bulk load follows what is in use (105 MB
# instead of 120-165 MB after a million entities; same throughput). docs/benchmarks.md.
ENV MIMALLOC_PURGE_DELAY=0
VOLUME /var/lib/calanque
EXPOSE 1026
ENTRYPOINT ["/usr/local/bin/calanque"]
