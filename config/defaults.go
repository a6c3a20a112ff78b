package config

import "time"

// Default returns the configuration used where nothing else is set. Its
// values are the documented defaults of config/example.yaml (a test holds
// the two equal) and of DESIGN.md §10. Every call returns a fresh copy.
func Default() Config {
	return Config{
		Kafka: Kafka{
			Brokers:                []string{"127.0.0.1:9092"},
			Topics:                 []string{"events"},
			Group:                  "ragstream",
			ClientID:               "ragstream",
			StartOffset:            "earliest",
			Isolation:              "read_committed",
			SessionTimeout:         Duration(45 * time.Second),
			RebalanceTimeout:       Duration(60 * time.Second),
			FetchMaxBytes:          50 * MiB,
			FetchMaxPartitionBytes: 1 * MiB,
		},
		Qdrant: Qdrant{
			Addr:       "127.0.0.1:6334",
			Collection: "chunks",
			VectorSize: 384,
			Distance:   "Cosine",
			Timeout:    Duration(10 * time.Second),
			StoreText:  true,
		},
		Neo4j: Neo4j{
			URI:                       "bolt://127.0.0.1:7687",
			User:                      "neo4j",
			Database:                  "neo4j",
			Timeout:                   Duration(5 * time.Second),
			StoreText:                 true,
			MaxConnectionPoolSize:     100,
			MaxConcurrentTransactions: 1,
		},
		Redis: Redis{
			Addr: "127.0.0.1:6379",
		},
		Admin: Admin{
			Addr:              "127.0.0.1:8080",
			ReadHeaderTimeout: Duration(5 * time.Second),
			ReadTimeout:       Duration(30 * time.Second),
			WriteTimeout:      Duration(30 * time.Second),
			IdleTimeout:       Duration(120 * time.Second),
			ShutdownTimeout:   Duration(10 * time.Second),
			MaxHeaderBytes:    1 * MiB,
			MaxBodyBytes:      4 * MiB,
			ReadinessInterval: Duration(2 * time.Second),
			KafkaCheckTimeout: Duration(3 * time.Second),
		},
		DLQ: DLQ{
			ConnectCompatibleHeaders: true,
			ProduceTimeout:           Duration(3 * time.Second),
			MaxReplayCount:           3,
		},
		Log: Log{Level: "info"},
		Pipeline: Pipeline{
			Batch: Batch{
				MaxRecords: 1000,
				MaxBytes:   8 * MiB,
				Linger:     Duration(50 * time.Millisecond),
			},
			MaxInflightBatches:     2,
			MaxInflightBytes:       24 << 20,
			DrainTimeout:           Duration(20 * time.Second),
			TombstoneRetention:     Duration(7 * 24 * time.Hour),
			TombstoneSweepInterval: Duration(time.Hour),
			Retry: Retry{
				MaxAttempts:    5,
				InitialBackoff: Duration(100 * time.Millisecond),
				MaxBackoff:     Duration(5 * time.Second),
				MaxElapsed:     Duration(30 * time.Second),
			},
			Breaker: Breaker{
				FailureThreshold:    5,
				OpenTimeout:         Duration(10 * time.Second),
				HalfOpenMaxRequests: 1,
			},
			LagRefresh: Duration(10 * time.Second),
		},
		Event: Event{
			MaxRecordBytes:  4 * MiB,
			MaxIDBytes:      512,
			MaxTextBytes:    1 * MiB,
			MaxStringBytes:  4 * KiB,
			MaxEntities:     256,
			MaxRelations:    512,
			MaxMetadataKeys: 64,
			MaxProps:        64,
		},
		Dev: Dev{
			KafkaListen:  "127.0.0.1:9092",
			QdrantListen: "127.0.0.1:6334",
			Neo4jURI:     "bolt://127.0.0.1:7687",
		},
	}
}
