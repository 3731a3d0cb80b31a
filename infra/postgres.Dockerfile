# PostgreSQL from Debian's packages, for the compose stack where no registry is reachable
# (compose.host-network.yaml). Elsewhere compose.yaml uses the official postgres:16 image.
# hadolint ignore=DL3006
ARG BASE_IMAGE=debian:bookworm-slim
# hadolint ignore=DL3006
FROM ${BASE_IMAGE}
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends postgresql \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /var/lib/postgresql/data /run/postgresql \
    && chown -R postgres:postgres /var/lib/postgresql /run/postgresql
# hadolint ignore=DL3066
USER postgres
ENV PGDATA=/var/lib/postgresql/data
# First start: a cluster for user telephony (trust on the loopback only), then the server.
CMD ["sh", "-c", "B=$(ls -d /usr/lib/postgresql/*/bin); [ -f $PGDATA/PG_VERSION ] || $B/initdb -U telephony --auth=trust -D $PGDATA; exec $B/postgres -D $PGDATA -p ${PGPORT:-5432} -c listen_addresses=127.0.0.1 -k /run/postgresql"]
