/**
 * The answers cellgate makes itself: `{"error": code, "message": text}` as JSON (docs/interfaces.md), and a region's
 * answer relayed to the sender.
 *
 * @since 0.2.0
 */
import type { WebhookResponse } from "./Domain.js"
import { relayableHeaders } from "./Forwarding.js"
import type { RegionName } from "./Ids.js"
import type { RegionResponse } from "./RegionClient.js"

/**
 * An answer cellgate makes itself: `{"error": code, "message": text}` as JSON.
 *
 * @since 0.1.0
 * @category constructors
 */
export const errorResponse = (
  status: number,
  error: string,
  message: string,
  headers: Record<string, string> = {}
): WebhookResponse => ({
  status,
  headers: { "content-type": "application/json", ...headers },
  body: JSON.stringify({ error, message })
})

/**
 * One region's answer relayed to the sender, with `x-cellgate-region` (repeated headers stay separate); an answer
 * longer than the cap (`truncated`) is never relayed in part: 502 `answer_too_large`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const relay = (region: RegionName, answer: RegionResponse): WebhookResponse =>
  answer.truncated === true
    ? errorResponse(502, "answer_too_large", `the answer of region ${region} is larger than delivery.maxAnswerBytes`, {
      "x-cellgate-region": region
    })
    : {
      status: answer.status,
      headers: { ...relayableHeaders(answer.headers), "x-cellgate-region": region },
      body: answer.body
    }
