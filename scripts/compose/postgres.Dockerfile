# A local stand-in for the postgres image: Debian's PostgreSQL (the host's
# package, whatever its major version), with what that image documents:
# POSTGRES_PASSWORD required, POSTGRES_USER and POSTGRES_DB, a cluster made
# on the first start with password authentication over the network, and
# the scripts of /docker-entrypoint-initdb.d run once against it.
FROM docker.io/library/debian:bookworm-slim
# Debian's binaries look for their files under their major version's paths.
ARG PG_VERSION
COPY lib/ /usr/local/lib/stand-in/
COPY pg/ /usr/lib/postgresql/${PG_VERSION}/
COPY share/ /usr/share/postgresql/${PG_VERSION}/
COPY postgres-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
RUN echo /usr/local/lib/stand-in > /etc/ld.so.conf.d/stand-in.conf && ldconfig \
    && useradd --uid 999 --home-dir /var/lib/postgresql --create-home postgres \
    && mkdir -p /var/lib/postgresql/data /var/run/postgresql /docker-entrypoint-initdb.d \
    && chown -R postgres:postgres /var/lib/postgresql /var/run/postgresql \
    && ln -s /usr/lib/postgresql/${PG_VERSION} /usr/lib/postgresql/current
ENV PATH=/usr/lib/postgresql/current/bin:$PATH PGDATA=/var/lib/postgresql/data
VOLUME ["/var/lib/postgresql/data"]
EXPOSE 5432
STOPSIGNAL SIGINT
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["postgres"]
