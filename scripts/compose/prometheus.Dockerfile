# A local stand-in for prom/prometheus: Debian's Prometheus (the host's
# package), laid out as that image is (/bin/prometheus, the user nobody,
# /prometheus its working and data directory).
FROM docker.io/library/debian:bookworm-slim
COPY lib/ /usr/local/lib/stand-in/
COPY bin/prometheus /bin/prometheus
# Debian's build keeps its data in /var/lib/prometheus/metrics2 unless told;
# the image's in /prometheus (its `data/`, from the working directory).
RUN echo /usr/local/lib/stand-in > /etc/ld.so.conf.d/stand-in.conf && ldconfig \
    && mkdir -p /prometheus /etc/prometheus /var/lib/prometheus && chown 65534:65534 /prometheus \
    && ln -s /prometheus /var/lib/prometheus/metrics2
USER 65534
WORKDIR /prometheus
EXPOSE 9090
VOLUME ["/prometheus"]
ENTRYPOINT ["/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]
