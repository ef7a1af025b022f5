# The jobstream example image: `example-quickstart` (worker and producer of
# the quickstart) and the `jobstream` CLI. Used by docker-compose.yml.
#
#   docker build -t jobstream-example:local .

FROM rust:1-bookworm AS builder
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p example-quickstart -p jobstream-cli \
 && install -D -m 0755 target/release/example-quickstart /out/example-quickstart \
 && install -D -m 0755 target/release/jobstream /out/jobstream

FROM debian:bookworm-slim
RUN useradd --system --no-create-home --shell /usr/sbin/nologin jobstream
COPY --from=builder /out/example-quickstart /out/jobstream /usr/local/bin/
USER jobstream
ENV REDIS_URL=redis://redis:6379
CMD ["example-quickstart", "--help"]
