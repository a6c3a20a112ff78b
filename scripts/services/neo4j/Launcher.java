// Launcher starts an embedded Neo4j 5.26 Community DBMS with the Bolt
// connector on 127.0.0.1, for tests. It is run in single-file source mode with
// the jars that scripts/services.sh resolves from Maven Central:
//
//   java -cp '<jars>/*' Launcher.java <home> <port> <auth on|off> [password]
//
// It prints a line "READY bolt://127.0.0.1:<port>" once a query has run, then
// blocks until it is signalled; SIGTERM shuts the DBMS down cleanly through the
// shutdown hook, so the same home can be started again with its data. Any
// failure before READY exits non-zero with the cause on stderr.

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Map;
import java.util.concurrent.CountDownLatch;

import org.neo4j.configuration.GraphDatabaseSettings;
import org.neo4j.configuration.connectors.BoltConnector;
import org.neo4j.configuration.connectors.BoltConnectorInternalSettings;
import org.neo4j.configuration.helpers.SocketAddress;
import org.neo4j.dbms.api.DatabaseManagementService;
import org.neo4j.dbms.api.DatabaseManagementServiceBuilder;
import org.neo4j.io.ByteUnit;

public class Launcher {
    // Neo4j 5 rejects shorter passwords (dbms.security.auth_minimum_password_length).
    private static final int MIN_PASSWORD_LENGTH = 8;

    public static void main(String[] args) throws Exception {
        if (args.length < 3 || args.length > 4) {
            usage("expected 3 or 4 arguments, got " + args.length);
        }
        Path home = Path.of(args[0]).toAbsolutePath();
        int port = parsePort(args[1]);
        boolean auth = parseAuth(args[2]);
        String password = args.length == 4 ? args[3] : "";
        if (auth && password.length() < MIN_PASSWORD_LENGTH) {
            usage("password: auth is on, so a password of at least " + MIN_PASSWORD_LENGTH + " characters is required");
        }
        Files.createDirectories(home);

        DatabaseManagementService dbms = new DatabaseManagementServiceBuilder(home)
                .setConfig(BoltConnector.enabled, true)
                .setConfig(BoltConnector.listen_address, new SocketAddress("127.0.0.1", port))
                .setConfig(BoltConnector.encryption_level, BoltConnector.EncryptionLevel.DISABLED)
                .setConfig(GraphDatabaseSettings.auth_enabled, auth)
                .setConfig(GraphDatabaseSettings.pagecache_memory, ByteUnit.mebiBytes(256))
                .setConfig(GraphDatabaseSettings.udc_enabled, false)
                // Bolt waits 5 s twice on shutdown for connections and threads to
                // finish; tests stop and restart the server, so keep it short.
                .setConfig(BoltConnectorInternalSettings.connection_shutdown_wait_time, Duration.ofSeconds(1))
                .setConfig(BoltConnectorInternalSettings.thread_pool_shutdown_wait_time, Duration.ofSeconds(1))
                .build();

        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                dbms.shutdown();
            } finally {
                stopped.countDown();
            }
        }, "neo4j-shutdown"));

        if (auth) {
            // The embedded API runs with full rights, so it can set the initial
            // password that a server would take from neo4j-admin. On a restart
            // of the same home the password is already set, and Neo4j refuses
            // to set it to the same value again: that refusal is success.
            try {
                dbms.database(GraphDatabaseSettings.SYSTEM_DATABASE_NAME).executeTransactionally(
                        "ALTER USER neo4j SET PASSWORD $password CHANGE NOT REQUIRED",
                        Map.of("password", password));
            } catch (RuntimeException e) {
                if (!String.valueOf(e.getMessage()).contains("cannot be the same")) {
                    throw e;
                }
            }
        }
        dbms.database(GraphDatabaseSettings.DEFAULT_DATABASE_NAME).executeTransactionally("RETURN 1");

        System.out.println("READY bolt://127.0.0.1:" + port);
        System.out.flush();
        stopped.await();
    }

    private static int parsePort(String s) {
        try {
            int port = Integer.parseInt(s);
            if (port > 0 && port < 65536) {
                return port;
            }
        } catch (NumberFormatException e) {
            // Reported below with the offending value.
        }
        usage("port: want 1-65535, got \"" + s + "\"");
        return 0;
    }

    private static boolean parseAuth(String s) {
        switch (s) {
            case "on":
                return true;
            case "off":
                return false;
            default:
                usage("auth: want on or off, got \"" + s + "\"");
                return false;
        }
    }

    private static void usage(String problem) {
        System.err.println("Launcher: " + problem);
        System.err.println("usage: java -cp '<jars>/*' Launcher.java <home> <port> <on|off> [password]");
        System.exit(2);
    }
}
