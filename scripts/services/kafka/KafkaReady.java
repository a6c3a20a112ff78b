// KafkaReady confirms that a freshly started broker answers a real client: it
// asks for the cluster's brokers and its topic list with the Admin client of
// the kafka-clients jar the broker itself was started from. scripts/services.sh
// compiles it once into its cache and runs it once the broker logged "Kafka Server
// started", because that line comes before the listener serves metadata.
//
//   java -cp '<classes>:<jars>/*' KafkaReady <bootstrap host:port> <timeout seconds>
//
// Exit 0 and one line on stdout when ready; exit 1 with the last error otherwise.

import java.util.Collection;
import java.util.Properties;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.common.Node;

public class KafkaReady {
    public static void main(String[] args) throws Exception {
        if (args.length != 2) {
            System.err.println("usage: java -cp '<classes>:<jars>/*' KafkaReady <bootstrap> <timeout seconds>");
            System.exit(2);
        }
        String bootstrap = args[0];
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(Long.parseLong(args[1]));

        Properties props = new Properties();
        props.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, "3000");
        props.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "5000");
        props.put(AdminClientConfig.RETRY_BACKOFF_MS_CONFIG, "200");

        Exception last = null;
        int attempts = 0;
        while (System.nanoTime() < deadline) {
            attempts++;
            try (Admin admin = Admin.create(props)) {
                Collection<Node> nodes = admin.describeCluster().nodes().get(5, TimeUnit.SECONDS);
                int topics = admin.listTopics().names().get(5, TimeUnit.SECONDS).size();
                if (!nodes.isEmpty()) {
                    System.out.println("kafka at " + bootstrap + " ready: " + nodes.size() + " broker(s), "
                            + topics + " topic(s), after " + attempts + " attempt(s)");
                    return;
                }
                last = new IllegalStateException("metadata lists no broker");
            } catch (Exception e) {
                last = e;
            }
            Thread.sleep(300);
        }
        System.err.println("kafka at " + bootstrap + " not ready after " + attempts + " attempt(s): " + last);
        System.exit(1);
    }
}
