package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os/signal"
	"syscall"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/ragstream/ragstream/config"
	"github.com/ragstream/ragstream/sinks/qdrant/qdranttest"
)

// devPartitions is the partition count of dev mode's topics.
const devPartitions = 6

func runDev(args []string, stdout, stderr io.Writer) error {
	cfg, log, err := workerCommand("dev", "ragstream dev [--config FILE] [--set key=value ...]", []string{
		"runs the worker on the embedded default: an in-process Kafka on dev.kafka_listen,",
		"the in-process Qdrant stand-in on dev.qdrant_listen, and the Neo4j at dev.neo4j_uri",
	}, true, args, stdout, stderr)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	env, err := startDevServices(cfg)
	if err != nil {
		log.Error().Err(err).Msg("dev services failed to start")
		return err
	}
	defer env.close()
	log.Info().Str("kafka", cfg.Kafka.Brokers[0]).Str("qdrant", cfg.Qdrant.Addr).
		Str("neo4j", cfg.Neo4j.URI).Strs("topics", cfg.Kafka.Topics).
		Msg("dev mode: in-process Kafka and Qdrant stand-in listening")
	fmt.Fprintf(stderr, "ragstream dev: Kafka %s, Qdrant gRPC %s, Neo4j %s, admin http://%s\n",
		cfg.Kafka.Brokers[0], cfg.Qdrant.Addr, cfg.Neo4j.URI, cfg.Admin.Addr)

	w, err := newWorker(ctx, cfg, log)
	if err != nil {
		log.Error().Err(err).Msg("start-up failed")
		return err
	}
	return w.run(ctx)
}

// devServices are dev mode's in-process Kafka and Qdrant.
type devServices struct {
	kafka  *kfake.Cluster
	qdrant *qdranttest.Server
}

func (d *devServices) close() {
	if d.kafka != nil {
		d.kafka.Close()
	}
	if d.qdrant != nil {
		d.qdrant.Close()
	}
}

// startDevServices starts kfake on dev.kafka_listen and the Qdrant stand-in
// on dev.qdrant_listen, and points cfg at them and at dev.neo4j_uri.
func startDevServices(cfg *config.Config) (*devServices, error) {
	d := &devServices{}
	kl, err := net.Listen("tcp", cfg.Dev.KafkaListen)
	if err != nil {
		return nil, fmt.Errorf("dev.kafka_listen %s: %w", cfg.Dev.KafkaListen, err)
	}
	used := false
	d.kafka, err = kfake.NewCluster(
		kfake.NumBrokers(1),
		kfake.SeedTopics(devPartitions, cfg.Kafka.Topics...),
		kfake.DefaultNumPartitions(devPartitions),
		kfake.AllowAutoTopicCreation(),
		// Serve on the configured address, so kcat and other clients find
		// the broker where dev mode says it is.
		kfake.ListenFn(func(network, _ string) (net.Listener, error) {
			if used {
				return nil, errors.New("dev mode runs one broker")
			}
			used = true
			return kl, nil
		}),
	)
	if err != nil {
		kl.Close()
		return nil, fmt.Errorf("in-process kafka: %w", err)
	}
	ql, err := net.Listen("tcp", cfg.Dev.QdrantListen)
	if err != nil {
		d.close()
		return nil, fmt.Errorf("dev.qdrant_listen %s: %w", cfg.Dev.QdrantListen, err)
	}
	d.qdrant = qdranttest.New()
	go func() { _ = d.qdrant.Serve(ql) }()

	cfg.Kafka.Brokers = d.kafka.ListenAddrs()
	cfg.Kafka.TLS = config.KafkaTLS{}
	cfg.Kafka.SASL = config.KafkaSASL{}
	cfg.Qdrant.Addr = ql.Addr().String()
	cfg.Qdrant.APIKey = ""
	cfg.Qdrant.TLS = config.QdrantTLS{}
	cfg.Neo4j.URI = cfg.Dev.Neo4jURI
	return d, nil
}
