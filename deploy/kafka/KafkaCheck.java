// KafkaCheck: a tiny Kafka admin client used by deploy/services.sh.
//
//   java -cp <classes>:<libs>/* KafkaCheck ready  BOOTSTRAP TIMEOUT_MS
//       exits 0 once the cluster answers DescribeCluster and ListTopics,
//       printing "cluster <id>: <n> broker(s), <m> topic(s)".
//   java -cp <classes>:<libs>/* KafkaCheck topics BOOTSTRAP TIMEOUT_MS
//       prints every topic with its partition count.
//
// It is compiled once by services.sh into .cache/kafka/classes.
import java.util.Properties;
import java.util.Set;
import java.util.TreeSet;
import java.util.Map;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.DescribeClusterResult;
import org.apache.kafka.clients.admin.TopicDescription;

public final class KafkaCheck {
    public static void main(String[] args) throws Exception {
        if (args.length != 3) {
            System.err.println("usage: KafkaCheck ready|topics BOOTSTRAP TIMEOUT_MS");
            System.exit(2);
        }
        String cmd = args[0];
        String bootstrap = args[1];
        int timeoutMs = Integer.parseInt(args[2]);

        Properties p = new Properties();
        p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(AdminClientConfig.CLIENT_ID_CONFIG, "visrec-services-check");
        p.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, Math.min(timeoutMs, 10000));
        p.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, timeoutMs);
        p.put(AdminClientConfig.RECONNECT_BACKOFF_MAX_MS_CONFIG, 500);

        int rc = 0;
        try (Admin admin = Admin.create(p)) {
            switch (cmd) {
                case "ready": {
                    DescribeClusterResult c = admin.describeCluster();
                    String id = c.clusterId().get(timeoutMs, TimeUnit.MILLISECONDS);
                    int nodes = c.nodes().get(timeoutMs, TimeUnit.MILLISECONDS).size();
                    Set<String> topics = admin.listTopics().names().get(timeoutMs, TimeUnit.MILLISECONDS);
                    System.out.printf("cluster %s: %d broker(s), %d topic(s)%n", id, nodes, topics.size());
                    if (nodes < 1) rc = 1;
                    break;
                }
                case "topics": {
                    Set<String> names = new TreeSet<>(admin.listTopics().names().get(timeoutMs, TimeUnit.MILLISECONDS));
                    Map<String, TopicDescription> d = admin.describeTopics(names).allTopicNames().get(timeoutMs, TimeUnit.MILLISECONDS);
                    for (String n : names) {
                        System.out.printf("%s\t%d partition(s)%n", n, d.get(n).partitions().size());
                    }
                    break;
                }
                default:
                    System.err.println("unknown command " + cmd);
                    rc = 2;
            }
        } catch (Exception e) {
            Throwable t = e.getCause() != null ? e.getCause() : e;
            System.err.println("kafka-check: " + bootstrap + ": " + t);
            rc = 1;
        }
        System.exit(rc);
    }
}
