# syntax=docker/dockerfile:1
# The jobstream example image: `example-quickstart` (worker and producer of
# the quickstart) and the `jobstream` CLI, stripped, on a runtime image
# without a shell or a package manager, run as a non-root user. Used by
# docker-compose.yml; a template for your own worker image is in
# docs/deployment.md ("Your own worker image").
#
#   docker build -t jobstream-example:local .
#   docker run --rm -e REDIS_URL=redis://host:6379 jobstream-example:local jobstream stats

# ---- build -------------------------------------------------------------------
FROM rust:1-bookworm AS builder
WORKDIR /src

# Dependencies first, in a layer of their own: it is rebuilt only when a
# manifest or Cargo.lock changes, not on every source edit. `cargo fetch`
# needs every workspace member's manifest and a target file for each, so
# empty stand-ins are made for the sources and removed again. A new member of
# the workspace needs its line here (the fetch fails without it).
COPY Cargo.toml Cargo.lock ./
COPY core/Cargo.toml core/
COPY producer/Cargo.toml producer/
COPY worker/Cargo.toml worker/
COPY cli/Cargo.toml cli/
COPY testkit/Cargo.toml testkit/
COPY chaos/Cargo.toml chaos/
COPY bench/Cargo.toml bench/
COPY examples/quickstart/Cargo.toml examples/quickstart/
COPY examples/shop/Cargo.toml examples/shop/
COPY examples/payments/Cargo.toml examples/payments/
COPY jobstream/Cargo.toml jobstream/
COPY conformance/Cargo.toml conformance/
RUN set -eu; \
    for m in core producer worker cli testkit chaos bench examples/quickstart \
             examples/shop examples/payments jobstream conformance; do \
      for f in src/lib.rs $(sed -n 's/^path *= *"\(.*\)"/\1/p' "$m/Cargo.toml"); do \
        mkdir -p "$(dirname "$m/$f")"; touch "$m/$f"; echo "$m/$f" >> /tmp/stubs; \
      done; \
    done; \
    cargo fetch --locked; \
    xargs rm -f < /tmp/stubs

# Then the sources, built offline from what was fetched.
COPY . .
RUN cargo build --release --locked --offline -p example-quickstart -p jobstream-cli \
 && install -D -m 0755 target/release/example-quickstart /out/example-quickstart \
 && install -D -m 0755 target/release/jobstream /out/jobstream \
 && strip /out/example-quickstart /out/jobstream

# ---- runtime -----------------------------------------------------------------
# distroless/cc: glibc, libgcc_s (unwinding), CA certificates (for
# rediss:// with the system's roots) and tzdata, nothing else: no shell, no
# package manager, ~25 MB. The binaries use rustls (no OpenSSL), so nothing
# more is needed. The `nonroot` tag runs as uid/gid 65532; USER repeats it as
# numbers so Kubernetes' runAsNonRoot can check it. Every command in
# docker-compose.yml and deploy/kubernetes is in exec form (no `sh -c`), and
# probes are HTTP (/livez, /readyz), so no shell is needed. For a shell to
# debug with, use `kubectl debug` or build FROM debian:bookworm-slim with the
# same USER (see docs/deployment.md).
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=builder /out/example-quickstart /out/jobstream /usr/local/bin/
USER 65532:65532
# No default REDIS_URL: a pod missing its Secret must fail to start, not
# connect to whatever `redis` resolves to (the binaries' own default is
# 127.0.0.1, inside the container: nothing).
CMD ["example-quickstart", "--help"]
