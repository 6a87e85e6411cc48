package main

import (
	"fmt"

	"github.com/visrec/visrec/datasets"
	"github.com/visrec/visrec/eval"
	"github.com/visrec/visrec/models"
)

// batchModels are the models that train on a whole data set at once rather than through the
// updater. pmf-als and mf-als are the batch (ALS) counterparts of the online pmf and mf.
var batchModels = map[string]bool{"wmf": true, "vbpr": true, "neumf": true, "multvae": true, "bivae": true,
	"pmf-als": true, "mf-als": true}

// batchModel is a trained batch model: it scores and it snapshots.
type batchModel interface {
	eval.Scorer
	models.Snapshotter
}

// trainBatch trains the batch model name on train with K factors for epochs (ALS iterations
// for wmf, pmf-als and mf-als), calling tick after each.
func trainBatch(name string, ds *datasets.Dataset, train []datasets.Interaction, factors, epochs int, tick func(int)) (batchModel, error) {
	switch name {
	case "wmf":
		o := models.DefaultWMFOptions()
		o.Factors, o.Iterations = factors, epochs
		return models.TrainWMF(len(ds.Users), len(ds.Items), train, o, tick)
	case "vbpr":
		if ds.FeatureDim == 0 {
			return nil, fmt.Errorf("vbpr needs item features: %s has none (try --data posters)", ds.Name)
		}
		o := models.DefaultVBPROptions()
		o.Factors, o.Epochs = factors, epochs
		return models.TrainVBPR(len(ds.Users), len(ds.Items), train, ds.Features, ds.FeatureDim, o, tick)
	case "neumf":
		o := models.DefaultNeuMFOptions()
		o.Epochs = epochs // NeuMF keeps its own small factor count (see DefaultNeuMFOptions)
		return models.TrainNeuMF(len(ds.Users), len(ds.Items), train, o, tick)
	case "multvae":
		// The paper's 600/200 network and 200 epochs take many minutes here; this is the size
		// measured on MovieLens in models' tests, annealed over a data set of this size.
		o := models.DefaultMultVAEOptions()
		o.Hidden, o.Latent, o.BatchSize, o.LR, o.AnnealSteps, o.Epochs = 128, 32, 200, 3e-3, 40, epochs
		return models.TrainMultVAE(len(ds.Users), len(ds.Items), train, o, tick)
	case "pmf-als", "mf-als":
		// Explicit: Interaction.Value is the rating (the defaults were tuned on MovieLens stars).
		o := models.DefaultPMFOptions()
		o.Biases = name == "mf-als"
		o.Factors, o.Iterations = factors, epochs
		return models.TrainPMF(len(ds.Users), len(ds.Items), train, o, tick)
	case "bivae":
		o := models.DefaultBiVAEOptions()
		o.Epochs = epochs
		return models.TrainBiVAE(len(ds.Users), len(ds.Items), train, o, tick)
	}
	return nil, fmt.Errorf("unknown batch model %q", name)
}
