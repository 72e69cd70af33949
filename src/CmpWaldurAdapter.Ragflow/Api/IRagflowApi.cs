using CmpWaldurAdapter.Ragflow.Contracts;
using Refit;

namespace CmpWaldurAdapter.Ragflow.Api;

/// <summary>
/// The RAGFlow operations the adapter calls, over the DTOs NSwag generates from <c>openapi/ragflow.yaml</c>.
/// Every answer is an envelope; a non-zero <c>code</c> arrives as <see cref="RagflowException"/>, never as a
/// returned envelope. Dataset ids passed here must come from the adapter's own subscription records.
/// </summary>
[Headers("Accept: application/json")]
public interface IRagflowApi
{
    [Get("/api/v1/system/healthz")]
    Task<HealthStatus> HealthAsync(CancellationToken cancellationToken);

    // Datasets

    [Post("/api/v1/datasets")]
    Task<DatasetEnvelope> CreateDatasetAsync([Body] CreateDatasetRequest request, CancellationToken cancellationToken);

    /// <summary>Finds a dataset by exact name (case-insensitive); a name that matches nothing is a not-found <see cref="RagflowException"/>.</summary>
    [Get("/api/v1/datasets")]
    Task<DatasetListEnvelope> FindDatasetByNameAsync([AliasAs("name")] string name, CancellationToken cancellationToken);

    /// <summary>Finds a dataset by id; an id that matches nothing is a not-found <see cref="RagflowException"/>.</summary>
    [Get("/api/v1/datasets")]
    Task<DatasetListEnvelope> FindDatasetByIdAsync([AliasAs("id")] string id, CancellationToken cancellationToken);

    /// <summary>One page of every dataset the service account owns, oldest first (reconciliation looks for orphans).</summary>
    [Get("/api/v1/datasets?orderby=create_time&desc=false")]
    Task<DatasetListEnvelope> ListDatasetsAsync([AliasAs("page")] int page, [AliasAs("page_size")] int pageSize, CancellationToken cancellationToken);

    /// <summary>Deletes datasets by id. Never called without ids: upstream's bulk forms delete every buyer's datasets.</summary>
    [Delete("/api/v1/datasets")]
    Task<DeleteEnvelope> DeleteDatasetsAsync([Body] DeleteByIdsRequest request, CancellationToken cancellationToken);

    // Documents

    [Multipart]
    [Post("/api/v1/datasets/{datasetId}/documents")]
    Task<DocumentListEnvelope> UploadDocumentsAsync(string datasetId, [AliasAs("file")] IEnumerable<StreamPart> files, CancellationToken cancellationToken);

    /// <summary>
    /// One page of the dataset's documents with their run state, oldest first: a document uploaded while the pages are
    /// read lands on the last page instead of shifting the others (RAGFlow's default is newest first).
    /// </summary>
    [Get("/api/v1/datasets/{datasetId}/documents?orderby=create_time&desc=false")]
    Task<DocumentPageEnvelope> ListDocumentsAsync(
        string datasetId,
        [AliasAs("page")] int page,
        [AliasAs("page_size")] int pageSize,
        CancellationToken cancellationToken);

    /// <summary>One document of the dataset by id (RAGFlow answers an id it does not hold with "You don't own the document").</summary>
    [Get("/api/v1/datasets/{datasetId}/documents")]
    Task<DocumentPageEnvelope> FindDocumentAsync(string datasetId, [AliasAs("id")] string id, CancellationToken cancellationToken);

    [Delete("/api/v1/datasets/{datasetId}/documents")]
    Task<DeleteEnvelope> DeleteDocumentsAsync(string datasetId, [Body] DeleteByIdsRequest request, CancellationToken cancellationToken);

    /// <summary>Starts parsing; only for documents that are UNSTART, FAIL or CANCEL (parsing a DONE one again costs again).</summary>
    [Post("/api/v1/datasets/{datasetId}/chunks")]
    Task<Envelope> ParseDocumentsAsync(string datasetId, [Body] ParseRequest request, CancellationToken cancellationToken);

    /// <summary>Stops parsing (the documents become CANCEL); used to restart a parse that got stuck.</summary>
    [Delete("/api/v1/datasets/{datasetId}/chunks")]
    Task<Envelope> StopParsingAsync(string datasetId, [Body] ParseRequest request, CancellationToken cancellationToken);

    // Retrieval

    [Post("/api/v1/retrieval")]
    Task<RetrievalEnvelope> RetrieveAsync([Body] RetrievalRequest request, CancellationToken cancellationToken);
}
