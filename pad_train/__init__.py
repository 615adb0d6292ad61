"""pad_train: fine-tune and evaluate a student model on curated pad splits."""
