// The image's HEALTHCHECK: healthy while GET /health answers 200 (503 while the model loads or the server drains).
const port = process.env.PORT || 5012;
fetch(`http://127.0.0.1:${port}/health`, { signal: AbortSignal.timeout(2500) }).then(
  (res) => process.exit(res.ok ? 0 : 1),
  () => process.exit(1),
);
