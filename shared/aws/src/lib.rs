//! AWS adapters: DynamoDB stores, SQS FIFO change-batch queue, Secrets Manager
