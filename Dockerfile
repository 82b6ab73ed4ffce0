# syntax=docker/dockerfile:1
# podtask operator image: built with the pinned Rust toolchain, shipped on distroless (no shell, no package
# manager), running as the non-root user 65532. TLS is rustls, so no OpenSSL is needed at runtime.

FROM rust:1.95-bookworm AS build
WORKDIR /src
# Dependencies first, so source edits don't rebuild them.
COPY Cargo.toml Cargo.lock ./
RUN mkdir src && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
    && cargo build --release --locked \
    && rm -rf src
COPY src ./src
RUN touch src/main.rs src/lib.rs && cargo build --release --locked --bin podtask \
    && ./target/release/podtask version

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/podtask /usr/local/bin/podtask
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/podtask"]
CMD ["run"]
