//! Pinpoint service type codes and annotation keys (facts from Pinpoint's wire protocol).

// Server applications.
pub const STAND_ALONE: i32 = 1000;
pub const TOMCAT: i32 = 1010;
pub const GRPC_SERVER: i32 = 1130;
pub const C_CPP: i32 = 1300;
pub const NODE: i32 = 1400;
pub const PHP: i32 = 1500;
pub const PYTHON: i32 = 1700;
pub const GO: i32 = 1800;

// Events.
pub const INTERNAL_METHOD: i32 = 5000;

// HTTP and RPC clients.
pub const HTTP_CLIENT_4: i32 = 9052;
pub const ASYNC_HTTP_CLIENT: i32 = 9056;
pub const GO_HTTP_CLIENT: i32 = 9401;
pub const PYTHON_REMOTE_METHOD: i32 = 9900;
pub const C_CPP_REMOTE_METHOD: i32 = 9800;
pub const PHP_REMOTE_METHOD: i32 = 9700;
pub const GRPC: i32 = 9160;

// Databases (the `_EXECUTE_QUERY` codes used on events).
pub const UNKNOWN_DB_EXECUTE_QUERY: i32 = 2051;
pub const MYSQL_EXECUTE_QUERY: i32 = 2101;
pub const MARIADB_EXECUTE_QUERY: i32 = 2151;
pub const MSSQL_EXECUTE_QUERY: i32 = 2251;
pub const ORACLE_EXECUTE_QUERY: i32 = 2301;
pub const POSTGRESQL_EXECUTE_QUERY: i32 = 2501;
pub const CASSANDRA_EXECUTE_QUERY: i32 = 2601;
pub const MONGO_EXECUTE_QUERY: i32 = 2651;
pub const CLICKHOUSE_EXECUTE_QUERY: i32 = 2801;

// Caches.
pub const REDIS: i32 = 8200;
pub const REDIS_REDISSON: i32 = 8203;
pub const MEMCACHED: i32 = 8050;

// Message brokers.
pub const RABBITMQ_CLIENT: i32 = 8300;
pub const ACTIVEMQ_CLIENT: i32 = 8310;
pub const ROCKETMQ_CLIENT: i32 = 8400;
pub const KAFKA_CLIENT: i32 = 8660;

// Annotation keys.
pub const ANNO_API: i32 = 12;
pub const ANNO_SQL: i32 = 21;
pub const ANNO_HTTP_URL: i32 = 40;
pub const ANNO_HTTP_STATUS_CODE: i32 = 46;
pub const ANNO_HTTP_METHOD: i32 = 50;
pub const ANNO_MESSAGE_QUEUE_URL: i32 = 100;
pub const ANNO_KAFKA_TOPIC: i32 = 140;
pub const ANNO_KAFKA_PARTITION: i32 = 141;
pub const ANNO_KAFKA_OFFSET: i32 = 142;
pub const ANNO_GRPC_STATUS: i32 = 160;
/// `args[0]`; `args[i]` is `ANNO_ARGS0 - i` for i in 0..10.
pub const ANNO_ARGS0: i32 = -1;
pub const MAX_ARGS: usize = 10;
