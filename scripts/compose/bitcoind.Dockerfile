# A local stand-in for bitcoin/bitcoin, which no registry this machine
# reaches serves: Bitcoin Core as scripts/install-core.sh builds it (with
# ZMQ), its shared libraries beside it, on the Debian base, with that
# image's user, data directory and entrypoint. scripts/compose-stack.sh
# builds it and tags it with the name docker-compose.yml uses.
FROM docker.io/library/debian:bookworm-slim
COPY lib/ /usr/local/lib/stand-in/
COPY bin/ /usr/local/bin/
COPY bitcoind-entrypoint.sh /entrypoint.sh
RUN echo /usr/local/lib/stand-in > /etc/ld.so.conf.d/stand-in.conf && ldconfig \
    && useradd --create-home --home-dir /home/bitcoin bitcoin \
    && mkdir -p /home/bitcoin/.bitcoin && chown -R bitcoin:bitcoin /home/bitcoin
ENV BITCOIN_DATA=/home/bitcoin/.bitcoin
VOLUME ["/home/bitcoin/.bitcoin"]
EXPOSE 8332 8333 18443 18444 28332
ENTRYPOINT ["/entrypoint.sh"]
CMD ["bitcoind"]
