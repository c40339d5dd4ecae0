//! Every Kafka request and response, generated from Apache Kafka's JSON message schemas.
