//! The refusals: a layer kiln does not import, named with its class and
//! the nearest layer kiln does import.

use super::KerasError;
use super::config::KLayer;

/// The nearest supported alternative to a Keras layer class.
fn alternative(class: &str) -> &'static str {
    match class {
        "SimpleRNN" | "GRU" | "LSTM" | "RNN" | "Bidirectional" | "ConvLSTM2D" | "GRUCell"
        | "LSTMCell" | "SimpleRNNCell" | "TimeDistributed" => {
            "recurrent layers are not supported yet (kiln issue #19); until then, Flatten + Dense \
             over the sequence"
        }
        "Lambda" => {
            "the same computation in built-in layers (Rescaling for scaling, Activation, \
             Reshape, Flatten)"
        }
        "Conv1D" | "Convolution1D" | "Conv3D" | "Convolution3D" => {
            "Conv2D (reshape the input to [height, width, 1])"
        }
        "DepthwiseConv2D" | "SeparableConv2D" | "SeparableConvolution2D" => {
            "Conv2D with `groups` (depthwise: groups = channels)"
        }
        "Conv2DTranspose" | "Conv1DTranspose" | "Conv3DTranspose" | "UpSampling2D" => {
            "none: kiln has no upsampling layer"
        }
        "MaxPooling1D" | "MaxPooling3D" | "MaxPool1D" | "MaxPool3D" => "MaxPooling2D",
        "AveragePooling1D" | "AveragePooling3D" | "AvgPool1D" | "AvgPool3D" => "AveragePooling2D",
        "GlobalMaxPooling2D"
        | "GlobalMaxPool2D"
        | "GlobalAveragePooling1D"
        | "GlobalAveragePooling3D"
        | "GlobalMaxPooling1D"
        | "GlobalAvgPool1D" => "GlobalAveragePooling2D",
        "LayerNormalization" | "GroupNormalization" | "UnitNormalization" => "BatchNormalization",
        "PReLU" | "ELU" | "ThresholdedReLU" => "LeakyReLU or ReLU",
        "Add" | "Subtract" | "Multiply" | "Average" | "Maximum" | "Minimum" | "Concatenate"
        | "Dot" => "a single-chain model (kiln imports each layer reading the one before)",
        "Sequential" | "Functional" | "Model" => {
            "the nested model's layers added to the outer model directly"
        }
        "Embedding" | "StringLookup" | "IntegerLookup" | "TextVectorization" | "Hashing"
        | "CategoryEncoding" => "none: kiln models take float features (encode them before kiln)",
        "Cropping2D" | "ZeroPadding2D" => "Conv2D with padding=\"same\"",
        "Permute" | "RepeatVector" => "Reshape",
        "Resizing" | "CenterCrop" => "resize the images before they reach the model",
        "RandomFlip" | "RandomRotation" | "RandomZoom" | "RandomCrop" | "RandomTranslation"
        | "RandomContrast" | "RandomBrightness" => {
            "remove the augmentation layers before saving (they do nothing at inference)"
        }
        _ => {
            "Dense, Conv2D, MaxPooling2D, AveragePooling2D, GlobalAveragePooling2D, Flatten, \
             Reshape, BatchNormalization, Rescaling, Normalization, an Activation, or a no-op \
             (Dropout, GaussianNoise)"
        }
    }
}

/// A built-in layer class kiln does not import.
pub(super) fn unsupported(layer: &KLayer) -> KerasError {
    let what = match layer.class.as_str() {
        "SimpleRNN" | "GRU" | "LSTM" => "recurrent layers are not supported yet",
        "Lambda" => "a Lambda layer runs arbitrary Python, which kiln cannot import",
        _ => "this layer is not supported",
    };
    KerasError::Layer {
        layer: layer.name.clone(),
        class: layer.class.clone(),
        problem: format!("{what}; nearest supported: {}", alternative(&layer.class)),
    }
}

/// A custom layer class (registered outside Keras).
pub(super) fn custom(layer: &KLayer, registered: &str) -> KerasError {
    KerasError::Layer {
        layer: layer.name.clone(),
        class: layer.class.clone(),
        problem: format!(
            "a custom layer class (`{registered}`), whose code is Python kiln cannot import; \
             nearest supported: {}",
            alternative(&layer.class)
        ),
    }
}
