/**
 * The original's optional verification before distribution (reference 3.3), off by default: the
 * artifact-store sends the job's last artifact to perry-verify (it holds the bytes), the scheduler
 * polls the verdict and tells the worker to proceed or skip.
 */
import Type from 'typebox';
import { defineEndpoint } from '../rpc.js';

export const submitVerificationEndpoint = defineEndpoint({
  service: 'artifact-store',
  name: 'submit-verification',
  request: Type.Object(
    {
      jobId: Type.String(),
      attempt: Type.Integer({ minimum: 1 }),
      verifyUrl: Type.String(),
      /** perry-verify's platform: ios-simulator, android-emulator or macos-arm64. */
      target: Type.String(),
    },
    { additionalProperties: false },
  ),
  response: Type.Object({ verificationId: Type.String() }, { additionalProperties: false }),
  timeoutMs: 60_000,
});
